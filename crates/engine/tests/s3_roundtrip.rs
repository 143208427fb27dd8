//! The engine against the real S3 server that `npm test` starts
//! (`S3WS_TEST_ENDPOINT`; skipped, saying so, without one).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use s3ws_engine::store::s3::S3Settings;
use s3ws_engine::{Config, Level, Observer, Phase, Progress, Workspace};

use common::maybe_skip_integration;

async fn admin(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(s3ws_engine::store::s3::https_client())
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    )
}

async fn new_bucket(s3: &aws_sdk_s3::Client, name: &str) -> String {
    let bucket = format!("rs-{name}-{}", std::process::id());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    bucket
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &str) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap()
}

#[derive(Default)]
struct Recorder {
    progress: Mutex<Vec<Progress>>,
    logs: Mutex<Vec<(Level, String)>>,
}

impl Observer for Recorder {
    fn progress(&self, p: Progress) {
        self.progress.lock().unwrap().push(p);
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_owned()));
    }
}

fn workspace(
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    dir: &Path,
    obs: Arc<Recorder>,
) -> Workspace {
    let mut config = Config::new(bucket, prefix, dir);
    config.s3 = S3Settings {
        endpoint: Some(endpoint.to_owned()),
        ..S3Settings::default()
    };
    Workspace::new(config, obs).unwrap()
}

fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n == ".s3ws") {
                continue; // the engine's own state
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[tokio::test]
async fn pull_skips_unchanged_and_push_sends_only_changes() {
    let endpoint = maybe_skip_integration!();
    let s3 = admin(&endpoint).await;
    let bucket = new_bucket(&s3, "roundtrip").await;
    for (k, v) in [
        ("ws/a.txt", "a"),
        ("ws/d/b.txt", "b"),
        ("ws/d/e/c.txt", "c"),
    ] {
        put(&s3, &bucket, k, v).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let obs = Arc::new(Recorder::default());
    let ws = workspace(&endpoint, &bucket, "ws", dir.path(), obs.clone());

    let first = ws.pull().await.unwrap();
    assert_eq!(
        (first.transferred, first.unchanged, first.deleted),
        (3, 0, 0)
    );
    assert!(first.errors.is_empty());
    assert_eq!(
        tree(dir.path()).get("d/e/c.txt").map(String::as_str),
        Some("c")
    );
    let downloads: Vec<_> = obs
        .progress
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.phase == Phase::Download)
        .cloned()
        .collect();
    assert_eq!(downloads.last().unwrap().current, 3);

    // A fresh instance on the same directory: nothing to download.
    let again = workspace(
        &endpoint,
        &bucket,
        "ws/",
        dir.path(),
        Arc::new(Recorder::default()),
    )
    .pull()
    .await
    .unwrap();
    assert_eq!((again.transferred, again.unchanged), (0, 3));

    std::fs::write(dir.path().join("a.txt"), "a2").unwrap();
    std::fs::remove_file(dir.path().join("d/b.txt")).unwrap();
    std::fs::write(dir.path().join("new.md"), "n").unwrap();
    let pushed = ws.push().await.unwrap();
    assert_eq!(
        (pushed.transferred, pushed.deleted, pushed.unchanged),
        (2, 1, 1)
    );
    assert_eq!(get(&s3, &bucket, "ws/a.txt").await, "a2");
    assert_eq!(get(&s3, &bucket, "ws/new.md").await, "n");
    let keys: Vec<String> = s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(keys, vec!["ws/a.txt", "ws/d/e/c.txt", "ws/new.md"]);

    let noop = ws.push().await.unwrap();
    assert_eq!((noop.transferred, noop.deleted), (0, 0));
}

#[tokio::test]
async fn failed_listing_rejects_and_deletes_nothing() {
    let endpoint = maybe_skip_integration!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "local work").unwrap();
    let obs = Arc::new(Recorder::default());
    let ws = workspace(
        &endpoint,
        "rs-no-such-bucket",
        "ws/",
        dir.path(),
        obs.clone(),
    );
    let err = ws.pull().await.unwrap_err();
    assert_eq!(err.code(), "S3_OPERATION_ERROR");
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
    assert_eq!(tree(dir.path()).len(), 1);
    assert!(obs
        .logs
        .lock()
        .unwrap()
        .iter()
        .any(|(l, m)| *l == Level::Error && m.starts_with("Pull failed")));
}
