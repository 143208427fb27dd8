//! One conformance suite for every `Store`: what the engine relies on a
//! store to do (listing order and pages, prefixes, ETags, conditional puts
//! and deletes answering `Error::Conflict`), run against the in-memory store
//! and the S3 store on the real server that `npm test` starts. The
//! JavaScript `send()` store is held to the same rules by
//! `__test__/durable.test.mjs` (conflicts through a stand-in client).

use md5::{Digest, Md5};
use s3ws_engine::local::FileStat;
use s3ws_engine::progress::{FileProgress, PhaseProgress, Silent};
use s3ws_engine::s3::{S3Settings, S3Store};
use s3ws_engine::store::memory::MemoryStore;
use s3ws_engine::store::{list_all, Condition, PutRequest, Store};
use s3ws_engine::{Error, Phase};
use std::sync::Arc;

/// Puts `body` at `key` under `condition`, from a real file as the engine does.
async fn put(
    store: &dyn Store,
    key: &str,
    body: &[u8],
    condition: Condition,
) -> Result<Option<String>, Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, body).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let stat = FileStat::of(&file.metadata().unwrap());
    let md5: [u8; 16] = Md5::digest(body).into();
    let phase = Arc::new(PhaseProgress::new(Arc::new(Silent), Phase::Upload, 1, 0));
    store
        .put(PutRequest {
            key,
            file: &file,
            path: &path,
            stat,
            content_type: "text/plain",
            md5,
            condition: &condition,
            progress: &FileProgress::new(&phase),
        })
        .await
}

async fn get(store: &dyn Store, key: &str) -> Vec<u8> {
    use futures::StreamExt;
    let mut body = store.get(key, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = body.stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Conflict(_)))
}

async fn conformance(store: &dyn Store) {
    let md5 = |b: &[u8]| hex::encode(Md5::digest(b));
    assert!(list_all(store, "p/").await.unwrap().is_empty());

    // Conditional creation and replacement.
    let first = put(store, "p/a.txt", b"one", Condition::IfNoneMatch)
        .await
        .unwrap();
    assert_eq!(
        first.as_deref(),
        Some(md5(b"one").as_str()),
        "a single-part ETag is the MD5"
    );
    assert!(is_conflict(
        put(store, "p/a.txt", b"two", Condition::IfNoneMatch).await
    ));
    assert!(is_conflict(
        put(store, "p/a.txt", b"two", Condition::IfMatch("0".repeat(32))).await
    ));
    assert_eq!(get(store, "p/a.txt").await, b"one");
    let second = put(store, "p/a.txt", b"two", Condition::IfMatch(first.unwrap()))
        .await
        .unwrap();
    assert_eq!(get(store, "p/a.txt").await, b"two");
    let head = store.head("p/a.txt").await.unwrap().unwrap();
    assert_eq!(head.etag, second);
    assert_eq!(head.content_md5().as_deref(), Some(md5(b"two").as_str()));
    assert!(store.head("p/missing").await.unwrap().is_none());

    // Listings: every key under the prefix (not a neighbouring prefix), in order, across pages.
    for i in 0..7 {
        put(store, &format!("p/d/{i}"), b"x", Condition::None)
            .await
            .unwrap();
    }
    put(store, "p10/neighbour", b"x", Condition::None)
        .await
        .unwrap();
    let keys: Vec<String> = list_all(store, "p/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    let mut want = vec!["p/a.txt".to_owned()];
    want.extend((0..7).map(|i| format!("p/d/{i}")));
    assert_eq!(keys, want);
    let listed = list_all(store, "p/").await.unwrap();
    assert_eq!(listed[0].size, Some(3));
    assert_eq!(listed[0].etag, second);

    // Conditional deletes.
    assert!(is_conflict(
        store.delete("p/a.txt", Some(&"0".repeat(32))).await
    ));
    assert!(store.head("p/a.txt").await.unwrap().is_some());
    store.delete("p/a.txt", second.as_deref()).await.unwrap();
    assert!(store.head("p/a.txt").await.unwrap().is_none());
    store.delete("p/never-there", None).await.unwrap();
}

#[tokio::test]
async fn the_memory_store_conforms() {
    conformance(&MemoryStore::new(3)).await;
}

#[tokio::test]
async fn the_s3_store_conforms() {
    let endpoint = std::env::var("S3WS_TEST_ENDPOINT")
        .expect("S3WS_TEST_ENDPOINT is not set: run the tests with `npm test`");
    let settings = S3Settings {
        endpoint: Some(endpoint),
        ..S3Settings::default()
    };
    let bucket = format!("rs-conformance-{}", std::process::id());
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(s3ws_engine::s3::https_client())
        .endpoint_url(settings.endpoint.clone().unwrap())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .load()
        .await;
    let admin = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    admin.create_bucket().bucket(&bucket).send().await.unwrap();
    let store = S3Store::connect(&bucket, &settings).await.unwrap();
    conformance(&store).await;
}
