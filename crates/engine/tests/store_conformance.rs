//! The store-conformance suite (`s3ws_engine::store::conformance`) against
//! the in-memory store and the S3 store on the real server that `npm test`
//! starts. The JavaScript `send()` store runs the same suite through the
//! binding (`__test__/store-conformance.test.mjs`). Without a server
//! (`S3WS_TEST_ENDPOINT`), the S3 store's run is skipped, saying so.

mod common;

use common::maybe_skip_integration;
use s3ws_engine::store::conformance;
use s3ws_engine::store::memory::MemoryStore;
use s3ws_engine::store::s3::{S3Settings, S3Store};

#[tokio::test]
async fn the_memory_store_conforms() {
    conformance::run(&MemoryStore::new(3)).await.unwrap();
}

#[tokio::test]
async fn the_s3_store_conforms() {
    let endpoint = maybe_skip_integration!();
    let settings = S3Settings {
        endpoint: Some(endpoint),
        ..S3Settings::default()
    };
    let bucket = format!("rs-conformance-{}", std::process::id());
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(s3ws_engine::store::s3::https_client())
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
    conformance::run(&store).await.unwrap();
}
