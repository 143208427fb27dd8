//! The benchmark's floor probe (issue 4): the least a client can do to fetch
//! a prefix. Lists the prefix (ListObjectsV2 pages) and GETs every object,
//! `--concurrency` (default 64) in flight, reading each body into memory; no
//! disk, no hashing, no temp files. Prints one line of JSON:
//! `{"ms":…,"listMs":…,"objects":…,"bytes":…,"maxRssKB":…,"cpuMs":…}` (`ms`
//! includes client setup and the listing, not process start).
//!
//! ```text
//! cargo build --release -p s3ws-engine --example floor_probe
//! floor_probe --endpoint http://127.0.0.1:9000 --bucket b --prefix p/ [--concurrency 64] [--discard] [--to-dir DIR] [--verify-to DIR]
//! ```
//!
//! `--verify-to DIR` is the like-for-like floor of a cold pull (issue 28):
//! each body streams to a temp file beside its final path under DIR, is
//! MD5-checked against its ETag (when that is an MD5) and renamed into
//! place, as the engine commits a download, with nothing else (no state, no
//! planning, no progress).
//!
//! `--discard` drops each chunk as it arrives instead of collecting the body
//! (for a single huge object). `--to-dir DIR` streams each body to
//! `DIR/<index>` instead (plain buffered writes, no hashing, no rename): the
//! "single-stream to disk" baseline of the 512 MiB pull. `--upload FILE`
//! instead uploads FILE as `<prefix>big.bin` the way the engine does (8 MiB
//! parts read from disk, 6 in flight, unsigned payload) but with no hashing
//! and no Content-MD5: the raw multipart baseline of the 512 MiB push.
//! Credentials and region come from the environment (`AWS_ACCESS_KEY_ID`,
//! …, `AWS_REGION`).

use std::sync::Arc;
use std::time::Instant;

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

mod common;
use common::peak_rss_kb;

enum Sink {
    Memory,
    Discard,
    Dir(std::path::PathBuf),
    /// Into place under the directory, verified (see `--verify-to`).
    Verified(std::path::PathBuf),
}

struct Args {
    endpoint: String,
    bucket: String,
    prefix: String,
    concurrency: usize,
    sink: Sink,
    upload: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut endpoint = None;
    let mut bucket = None;
    let mut prefix = String::new();
    let mut concurrency = 64;
    let mut sink = Sink::Memory;
    let mut upload = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value("--endpoint")?),
            "--bucket" => bucket = Some(value("--bucket")?),
            "--prefix" => prefix = value("--prefix")?,
            "--concurrency" => {
                concurrency = value("--concurrency")?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?
            }
            "--discard" => sink = Sink::Discard,
            "--to-dir" => sink = Sink::Dir(value("--to-dir")?.into()),
            "--verify-to" => sink = Sink::Verified(value("--verify-to")?.into()),
            "--upload" => upload = Some(value("--upload")?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        endpoint: endpoint.ok_or("--endpoint is required")?,
        bucket: bucket.ok_or("--bucket is required")?,
        prefix,
        concurrency: concurrency.max(1),
        sink,
        upload,
    })
}

async fn client(endpoint: &str) -> Client {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(s3ws_engine::store::s3::https_client())
        .region(Region::new(region))
        .endpoint_url(endpoint)
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn get(
    client: &Client,
    bucket: &str,
    (key, rel): (&str, &str),
    index: usize,
    sink: &Sink,
) -> Result<u64, BoxError> {
    let out = client.get_object().bucket(bucket).key(key).send().await?;
    let etag = out.e_tag().map(|e| e.trim_matches('"').to_owned());
    let mut body = out.body;
    match sink {
        Sink::Verified(dir) => {
            use md5::{Digest, Md5};
            let dest = dir.join(rel);
            let parent = dest.parent().unwrap_or(dir);
            tokio::fs::create_dir_all(parent).await?;
            let temp = parent.join(format!(".floor-{index}.partial"));
            let mut out =
                tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(&temp).await?);
            let (mut md5, mut n) = (Md5::new(), 0u64);
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                md5.update(&chunk);
                n += chunk.len() as u64;
                out.write_all(&chunk).await?;
            }
            out.flush().await?;
            let got = hex::encode(md5.finalize());
            if let Some(etag) = etag.filter(|e| e.len() == 32 && !e.contains('-')) {
                if got != etag {
                    return Err(format!("{key}: MD5 {got}, ETag {etag}").into());
                }
            }
            tokio::fs::rename(&temp, &dest).await?;
            Ok(n)
        }
        Sink::Memory => Ok(body.collect().await?.into_bytes().len() as u64),
        Sink::Discard => {
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                n += chunk?.len() as u64;
            }
            Ok(n)
        }
        Sink::Dir(dir) => {
            let file = tokio::fs::File::create(dir.join(index.to_string())).await?;
            let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                out.write_all(&chunk).await?;
            }
            out.flush().await?;
            Ok(n)
        }
    }
}

const PART: u64 = 8 * 1024 * 1024;

/// A multipart upload of `path` with nothing but the bytes: no hashing.
async fn upload(
    client: &Client,
    bucket: &str,
    key: &str,
    path: &std::path::Path,
) -> Result<u64, BoxError> {
    let file = Arc::new(std::fs::File::open(path)?);
    let size = file.metadata()?.len();
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await?;
    let id = created.upload_id().unwrap_or_default().to_owned();
    let mut parts: Vec<CompletedPart> = futures::stream::iter(0..size.div_ceil(PART))
        .map(|i| {
            let (file, path, id) = (file.clone(), path.to_path_buf(), id.clone());
            async move {
                let (offset, len) = (i * PART, PART.min(size - i * PART));
                let bytes = tokio::task::spawn_blocking(move || {
                    s3ws_engine::local::read_at(&file, &path, offset, len)
                })
                .await??;
                let out = client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(id)
                    .part_number(i as i32 + 1)
                    .content_length(len as i64)
                    .body(ByteStream::from(bytes))
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await?;
                Ok::<_, BoxError>(
                    CompletedPart::builder()
                        .part_number(i as i32 + 1)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .build(),
                )
            }
        })
        .buffer_unordered(6)
        .try_collect()
        .await?;
    parts.sort_by_key(|p| p.part_number());
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await?;
    Ok(size)
}

async fn run(args: Args) -> Result<String, BoxError> {
    let started = Instant::now();
    let client = client(&args.endpoint).await;
    if let Some(path) = &args.upload {
        let key = format!("{}big.bin", args.prefix);
        let bytes = upload(&client, &args.bucket, &key, path).await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        return Ok(format!(
            "{{\"ms\":{ms:.1},\"listMs\":0,\"objects\":1,\"bytes\":{bytes},\"maxRssKB\":{},\"cpuMs\":{}}}",
            peak_rss_kb(),
            cpu_ms()
        ));
    }
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(&args.bucket)
            .prefix(&args.prefix)
            .set_continuation_token(token.take())
            .send()
            .await?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => break,
        }
    }
    let list_ms = started.elapsed().as_secs_f64() * 1000.0;
    let objects = keys.len();
    let (client, bucket, sink) = (Arc::new(client), Arc::new(args.bucket), Arc::new(args.sink));
    let prefix = Arc::new(args.prefix);
    let results: Vec<Result<u64, BoxError>> = futures::stream::iter(keys.into_iter().enumerate())
        .map(|(i, key)| {
            let (client, bucket, sink, prefix) =
                (client.clone(), bucket.clone(), sink.clone(), prefix.clone());
            // A task each, as a real client would: bodies are read in parallel
            // on every worker thread.
            async move {
                tokio::spawn(async move {
                    let rel = key.strip_prefix(prefix.as_str()).unwrap_or(&key);
                    get(&client, &bucket, (&key, rel), i, &sink).await
                })
                .await
                .map_err(|e| -> BoxError { Box::new(e) })?
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let mut bytes = 0u64;
    for r in results {
        bytes += r?;
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(format!(
        "{{\"ms\":{ms:.1},\"listMs\":{list_ms:.1},\"objects\":{objects},\"bytes\":{bytes},\"maxRssKB\":{},\"cpuMs\":{}}}",
        peak_rss_kb(),
        cpu_ms()
    ))
}

/// CPU time (user + system) of this process so far, in ms (Linux
/// `/proc/self/stat`, USER_HZ = 100), 0 when unknown.
fn cpu_ms() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            Some((f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) * 10)
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("floor_probe: {e}");
            std::process::exit(2);
        }
    };
    match run(args).await {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!(
                "floor_probe: {}",
                aws_sdk_s3::error::DisplayErrorContext(e.as_ref())
            );
            std::process::exit(1);
        }
    }
}
