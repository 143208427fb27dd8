//! When something last showed life: a request's or body's stall timeout
//! counts from there, not from the start, so a slow transfer that keeps
//! moving is never cut; and the halt counts an operation's silence from
//! when its transfers last succeeded or moved a byte.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When a request or body last moved a byte (or began).
#[derive(Debug)]
pub struct Life {
    start: Instant,
    /// Milliseconds from `start`.
    last: AtomicU64,
}

impl Default for Life {
    fn default() -> Self {
        Life {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Life {
    /// Notes that bytes moved now.
    pub fn now(&self) {
        self.at(Instant::now());
    }

    /// Notes that bytes moved at `when` (never moving the note back).
    pub fn at(&self, when: Instant) {
        let ms = when.saturating_duration_since(self.start).as_millis() as u64;
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    /// When bytes last moved.
    pub fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Waits until nothing has moved for `stall`; meanwhile tells `moving`,
    /// every quarter of it, when bytes last moved.
    pub async fn stalled(&self, stall: Duration, mut moving: impl FnMut(Instant)) {
        loop {
            let due = self.last() + stall;
            tokio::time::sleep_until(due.min(Instant::now() + stall / 4)).await;
            let last = self.last();
            if last + stall <= Instant::now() {
                return;
            }
            moving(last);
        }
    }
}
