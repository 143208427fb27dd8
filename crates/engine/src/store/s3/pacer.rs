//! Every request of a store, paced to the rate the store accepts. S3
//! answers 503 `SlowDown` above a request rate per prefix (about 5,500 GET
//! and 3,500 PUT a second, lower while it scales); other stores answer 429.
//! Unthrottled, requests go out at once. From the first throttled answer
//! on, they start at most `rate` a second: a throttled answer cuts the rate
//! to 90% of what the store accepted in the last second, but by at most
//! half (the first answers of a burst come back before its accepted
//! requests do, so the accepted rate is low at first); at most once per
//! `CUT_EVERY`, as the answers to one burst arrive together. Each accepted
//! request raises the rate by `GAIN` requests a second (so it grows by half
//! a second: a cut is made up in a fifth of a second), so the pace hovers at
//! the store's limit: above it costs a few refused requests, under it costs
//! time. A second without a throttled answer ends the pacing (after an
//! outage of 503s, the pace is back at once). It sits below the SDK's
//! retries, so retried attempts, multipart parts and listings are paced too.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use tokio::time::Instant;

/// Lowest pace: a store throttling everything is still asked once a second.
const MIN_RATE: f64 = 1.0;
/// Answers within this long of a cut belong to the burst that caused it.
const CUT_EVERY: Duration = Duration::from_millis(100);
/// Share of the accepted rate kept on a cut.
const CUT_TO: f64 = 0.9;
/// Share of the rate kept on a cut, at least.
const CUT_MOST: f64 = 0.5;
/// Rate gained per accepted request (requests a second).
const GAIN: f64 = 0.5;
/// Shortest span the accepted rate is measured over.
const SPAN_MIN: Duration = Duration::from_millis(10);
/// Window over which the accepted rate is measured.
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct Pacer {
    pace: Mutex<Pace>,
    /// Requests waiting for their turn, in order.
    queue: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Pace {
    /// Requests a second; `None` until the store first throttles.
    rate: Option<f64>,
    /// When the last request started.
    last_start: Option<Instant>,
    last_cut: Option<Instant>,
    sent: Window,
    accepted: Window,
}

/// Events of the last `WINDOW`.
#[derive(Debug, Default)]
struct Window(VecDeque<Instant>);

impl Window {
    fn push(&mut self, now: Instant) {
        self.0.push_back(now);
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            self.0.pop_front();
        }
    }

    /// Events a second over the last `over` (at most `WINDOW`).
    fn rate(&self, now: Instant, over: Duration) -> f64 {
        let mut recent = self.0.iter().filter(|t| now.duration_since(**t) <= over);
        let Some(first) = recent.next() else {
            return 0.0;
        };
        let span = now.duration_since(*first).max(SPAN_MIN);
        (recent.count() + 1) as f64 / span.as_secs_f64()
    }
}

impl Pacer {
    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the turn of the next request. One request at a time waits,
    /// and it reads the rate when its wait is over: no slot is booked at a
    /// rate that has changed since.
    async fn turn(&self) {
        let _queue = self.queue.lock().await;
        // The slot waited for: the next one counts from it, not from the
        // wake-up (the timer ticks in milliseconds, late by up to one).
        let mut due = None;
        loop {
            let wait = {
                let mut pace = self.pace();
                let now = Instant::now();
                match pace.rate.zip(pace.last_start) {
                    Some((rate, last)) if last + Duration::from_secs_f64(1.0 / rate) > now => {
                        Some(last + Duration::from_secs_f64(1.0 / rate))
                    }
                    _ => {
                        pace.last_start = Some(due.unwrap_or(now));
                        pace.sent.push(now);
                        None
                    }
                }
            };
            match wait {
                Some(until) => {
                    due = Some(until);
                    tokio::time::sleep_until(until).await
                }
                None => return,
            }
        }
    }

    /// Takes in the store's answer to a request.
    fn answered(&self, status: u16) {
        let now = Instant::now();
        let mut pace = self.pace();
        match status {
            429 | 503 => {
                if pace
                    .last_cut
                    .is_some_and(|t| now.duration_since(t) < CUT_EVERY)
                {
                    return;
                }
                // Unpaced, the rate is what was sent just now (or lately,
                // if the answer was slow).
                let rate = pace.rate.unwrap_or_else(|| {
                    (pace.sent.rate(now, CUT_EVERY)).max(pace.sent.rate(now, WINDOW))
                });
                let accepted = pace.accepted.rate(now, WINDOW);
                let cut = (accepted * CUT_TO).clamp(rate * CUT_MOST, rate);
                pace.rate = Some(cut.max(MIN_RATE));
                pace.last_cut = Some(now);
            }
            s if s < 500 => {
                pace.accepted.push(now);
                let calm = pace
                    .last_cut
                    .is_some_and(|t| now.duration_since(t) > WINDOW);
                match &mut pace.rate {
                    Some(_) if calm => pace.rate = None,
                    Some(rate) => *rate += GAIN,
                    None => {}
                }
            }
            _ => {}
        }
    }
}

/// `http`, with every request paced by one `Pacer`.
pub(super) fn paced(http: SharedHttpClient) -> SharedHttpClient {
    let pacer = Arc::new(Pacer::default());
    http_client_fn(move |settings, components| {
        SharedHttpConnector::new(Paced {
            inner: http.http_connector(settings, components),
            pacer: pacer.clone(),
        })
    })
}

#[derive(Debug)]
struct Paced {
    inner: SharedHttpConnector,
    pacer: Arc<Pacer>,
}

impl HttpConnector for Paced {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, pacer) = (self.inner.clone(), self.pacer.clone());
        HttpConnectorFuture::new(async move {
            pacer.turn().await;
            let response = inner.call(request).await;
            if let Ok(r) = &response {
                pacer.answered(r.status().as_u16());
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn unthrottled_requests_are_not_paced_and_a_throttle_cuts_to_what_was_accepted() {
        let pacer = Pacer::default();
        let start = Instant::now();
        for _ in 0..100 {
            pacer.turn().await;
            pacer.answered(200);
        }
        assert_eq!(Instant::now(), start, "no pace before a throttle");
        tokio::time::advance(Duration::from_millis(500)).await;
        // 100 accepted in the last 0.5 s: 200 a second, cut to 180.
        pacer.answered(503);
        assert_eq!(pacer.pace().rate, Some(180.0));
        // The rest of the burst's answers do not cut again.
        pacer.answered(503);
        pacer.answered(429);
        assert_eq!(pacer.pace().rate, Some(180.0));
        // 19 requests take 0.1 s at 180 a second (the first goes at once).
        let before = Instant::now();
        for _ in 0..19 {
            pacer.turn().await;
        }
        let took = (Instant::now() - before).as_secs_f64();
        // (The timer ticks in milliseconds.)
        assert!((took - 0.1).abs() <= 2e-3, "{took}");
        // Each accepted request raises the pace; a server error does not.
        pacer.answered(200);
        pacer.answered(500);
        assert!((pacer.pace().rate.unwrap() - 180.5).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_cut_of_a_burst_is_at_most_half() {
        let pacer = Pacer::default();
        // 100 requests sent in 10 ms, 2 answered yet: 10,000 a second sent.
        for _ in 0..100 {
            pacer.turn().await;
        }
        pacer.answered(200);
        pacer.answered(200);
        tokio::time::advance(SPAN_MIN).await;
        pacer.answered(503);
        assert_eq!(pacer.pace().rate, Some(5_000.0));
    }

    #[tokio::test(start_paused = true)]
    async fn after_an_outage_of_503s_the_pace_is_back_a_second_after_the_store_is() {
        let pacer = Pacer::default();
        pacer.turn().await;
        for _ in 0..100 {
            pacer.answered(503);
            tokio::time::advance(CUT_EVERY).await;
        }
        // A store throttling everything is still asked once a second.
        assert_eq!(pacer.pace().rate, Some(MIN_RATE));
        let waiting = Instant::now();
        pacer.turn().await;
        pacer.answered(200);
        assert!(pacer.pace().rate.is_some());
        pacer.turn().await;
        let waited = (Instant::now() - waiting).as_secs_f64();
        assert!((waited - 1.0 / (MIN_RATE + GAIN)).abs() <= 2e-3, "{waited}");
        pacer.answered(200);
        assert!(pacer.pace().rate.is_some());
        // Accepted for a second since the last cut: unpaced again.
        tokio::time::advance(WINDOW).await;
        pacer.answered(200);
        assert_eq!(pacer.pace().rate, None);
        let now = Instant::now();
        for _ in 0..100 {
            pacer.turn().await;
        }
        assert_eq!(Instant::now(), now);
    }
}
