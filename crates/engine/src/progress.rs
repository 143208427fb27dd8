//! Progress and log records, sent to an `Observer` the caller provides.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Download,
    Upload,
    Cleanup,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Upload => "upload",
            Phase::Cleanup => "cleanup",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub current: usize,
    pub total: usize,
    /// Rounded, 0–100.
    pub percentage: u32,
    pub current_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Receives the engine's progress and log records. Called from any thread;
/// implementations must return quickly (queue, don't block).
pub trait Observer: Send + Sync {
    fn progress(&self, progress: Progress);
    fn log(&self, level: Level, message: &str);
    /// The files under the priority prefix have all been downloaded (or
    /// failed): the rest of the pull goes on.
    fn priority_settled(&self) {}
}

/// An observer that drops everything.
pub struct Silent;

impl Observer for Silent {
    fn progress(&self, _: Progress) {}
    fn log(&self, _: Level, _: &str) {}
}

/// Events per phase, as upstream (about 20, the last at 100%).
const EVENTS_PER_PHASE: usize = 20;

/// Counts finished items of one phase and reports every 1/20th of the way,
/// so a large transfer sends ~20 events however many files it moves.
pub struct PhaseProgress<'a> {
    observer: &'a dyn Observer,
    phase: Phase,
    total: usize,
    step: usize,
    done: AtomicUsize,
}

impl<'a> PhaseProgress<'a> {
    pub fn new(observer: &'a dyn Observer, phase: Phase, total: usize) -> Self {
        PhaseProgress {
            observer,
            phase,
            total,
            step: total.div_ceil(EVENTS_PER_PHASE).max(1),
            done: AtomicUsize::new(0),
        }
    }

    /// One more item of the phase finished (successfully or not).
    pub fn advance(&self, file: &str) {
        let current = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if current == self.total || current.is_multiple_of(self.step) {
            self.observer.progress(Progress {
                phase: self.phase,
                current,
                total: self.total,
                percentage: ((current * 100) as f64 / self.total as f64).round() as u32,
                current_file: Some(file.to_owned()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<Progress>>);
    impl Observer for Collect {
        fn progress(&self, p: Progress) {
            self.0.lock().unwrap().push(p);
        }
        fn log(&self, _: Level, _: &str) {}
    }

    #[test]
    fn about_twenty_events_last_at_100() {
        let c = Collect::default();
        let p = PhaseProgress::new(&c, Phase::Download, 120);
        for i in 0..120 {
            p.advance(&format!("f{i}"));
        }
        let events = c.0.lock().unwrap();
        assert_eq!(events.len(), 20);
        assert!(events
            .iter()
            .all(|e| e.total == 120 && e.phase == Phase::Download));
        assert_eq!(events.last().unwrap().percentage, 100);
        assert_eq!(events.last().unwrap().current, 120);

        let c = Collect::default();
        let p = PhaseProgress::new(&c, Phase::Upload, 3);
        (0..3).for_each(|_| p.advance("x"));
        assert_eq!(c.0.lock().unwrap().len(), 3);
    }
}
