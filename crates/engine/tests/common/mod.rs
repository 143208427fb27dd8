//! Shared by the integration tests. Those that need a real S3 server start
//! with `maybe_skip_integration!()`: `npm test` (scripts/test.mjs) starts one
//! and sets `S3WS_TEST_ENDPOINT`; a plain `cargo test` has none, and those
//! tests pass after printing that they were skipped.

use std::io::Write;

/// The variable naming the test server's endpoint.
pub const ENDPOINT_VAR: &str = "S3WS_TEST_ENDPOINT";

/// The test server's endpoint, or `None` (after printing which test is
/// skipped and why) when no server is set.
pub fn integration_endpoint() -> Option<String> {
    match std::env::var(ENDPOINT_VAR) {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            let thread = std::thread::current();
            let test = thread.name().unwrap_or("an integration test");
            // Straight to stderr: libtest captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {ENDPOINT_VAR} is not set (no S3 test server; \
                 `npm test` starts one and runs this test)"
            );
            None
        }
    }
}

/// The test server's endpoint; returns from the calling test, with a
/// printed message, when none is set.
macro_rules! maybe_skip_integration {
    () => {
        match $crate::common::integration_endpoint() {
            Some(endpoint) => endpoint,
            None => return,
        }
    };
}
pub(crate) use maybe_skip_integration;
