//! How requests are retried when the store pushes back: server errors and
//! throttling (S3's 503 `SlowDown`, 429 elsewhere) a few times per request,
//! without the retry quota meant for outages (a busy store is slow, not
//! broken). A throttled attempt waits only briefly: the pace of the whole
//! store is `pacer`'s, and the operation goes on retrying a throttled
//! transfer while others succeed (`transfer::Halt`).

use aws_sdk_s3::config::retry::{RetryPartition, TokenBucket};
use aws_smithy_runtime::client::retries::classifiers::HttpStatusCodeClassifier;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_types::retry::RetryConfig;
use std::time::Duration;

/// Attempts per request (the SDK's); throttled ones go on at the operation.
const ATTEMPTS: u32 = 4;
/// First wait before a throttled attempt again (doubling, jittered).
const THROTTLED_BACKOFF: Duration = Duration::from_millis(50);

pub(super) fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(THROTTLED_BACKOFF)
}

/// A retry quota of each store's own, unlimited: stores on other endpoints
/// or buckets never share one.
pub(super) fn partition(endpoint: &str, bucket: &str) -> RetryPartition {
    RetryPartition::custom(format!("s3ws {endpoint} {bucket}"))
        .token_bucket(TokenBucket::unlimited())
        .build()
}

/// Server errors and the answers of an overloaded server, retried.
pub(super) fn server_errors() -> HttpStatusCodeClassifier {
    HttpStatusCodeClassifier::new_from_codes(&[500, 502, 503, 504][..])
}

/// 429 Too Many Requests is throttling, whatever its error code (S3's own
/// `SlowDown` and `Throttling` codes the SDK knows).
#[derive(Debug, Default)]
pub(super) struct TooManyRequests;

impl ClassifyRetry for TooManyRequests {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response().map(|r| r.status().as_u16()) {
            Some(429) => RetryAction::throttling_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "TooManyRequests"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::http_status_code_classifier())
    }
}
