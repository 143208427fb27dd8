//! Progress and log records, sent to an `Observer` the caller provides.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::life::Life;

/// The part of an operation a progress event counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A pull's downloads.
    Download,
    /// A push's uploads.
    Upload,
    /// Deletions: a pull's of local files, a push's of objects.
    Cleanup,
    /// A restore's copies of old versions (and its delete markers).
    Restore,
}

impl Phase {
    /// The phase's name in progress events (`"download"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Upload => "upload",
            Phase::Cleanup => "cleanup",
            Phase::Restore => "restore",
        }
    }
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The phase counted.
    pub phase: Phase,
    /// Files finished (successfully or not) of `total`.
    pub current: usize,
    /// Files the phase has to handle.
    pub total: usize,
    /// Rounded, 0–100, by files (as upstream).
    pub percentage: u32,
    /// The workspace-relative path of the file whose finishing sent the
    /// event; `None` for the 0% event and for events while bytes move.
    pub current_file: Option<String>,
    /// Bytes moved so far in the phase, of `total_bytes` (as the listing or
    /// scan said; 0 for the cleanup phase).
    pub bytes: u64,
    /// Bytes the phase has to move.
    pub total_bytes: u64,
}

/// How much a log record matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail, such as each file moved or deleted.
    Debug,
    /// An operation's start and outcome, or a wait for the workspace lock.
    Info,
    /// Something went wrong, or needs the user's eye, but the operation
    /// goes on.
    Warn,
    /// A file or the whole operation failed.
    Error,
}

/// Receives the engine's progress and log records. Called from any thread;
/// implementations must return quickly (queue, don't block).
pub trait Observer: Send + Sync {
    /// A progress event.
    fn progress(&self, progress: Progress);
    /// A log record.
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

/// Events per phase by files finished, as upstream (about 20, the last at 100%).
const EVENTS_PER_PHASE: usize = 20;
/// While bytes move: an event every `BYTES_STEP` bytes, or after
/// `INTERVAL` when they flow slower than that.
const BYTES_STEP: u64 = 8 * 1024 * 1024;
const INTERVAL: Duration = Duration::from_millis(250);

/// Counts finished items and moved bytes of one phase: a 0% event when it
/// starts, then every 1/20th of the files (so a large transfer sends ~20
/// events however many files it moves), the last at 100% with all bytes,
/// and while bytes move, an event per `BYTES_STEP` bytes or per `INTERVAL`,
/// whichever comes first.
pub struct PhaseProgress {
    observer: Arc<dyn Observer>,
    phase: Phase,
    /// Files and bytes to handle, as known so far.
    totals: Mutex<Totals>,
    done: AtomicUsize,
    bytes: AtomicU64,
    /// Bytes, and milliseconds since `started`, of the last event sent for
    /// moving bytes (atomics: `moved` runs for every chunk of every file).
    last_bytes: AtomicU64,
    last_ms: AtomicU64,
    /// When bytes last moved.
    moved: Life,
    started: Instant,
    /// (current, bytes, percentage, total) of the last event sent. Callers race
    /// between counting and sending; one overtaken by another is dropped,
    /// so events never go backwards. Locked only to send (~20 events a
    /// phase, plus the throttled byte events).
    sent: Mutex<(usize, u64, u32, usize)>,
}

/// A phase's size: it may grow while it runs (a pull starts downloading
/// before its listing ends) until it is `settled`.
#[derive(Clone, Copy)]
struct Totals {
    files: usize,
    bytes: u64,
    settled: bool,
}

impl PhaseProgress {
    /// Starts counting a phase of `total` files and `total_bytes` bytes;
    /// sends the 0% event unless there is nothing to do.
    pub fn new(observer: Arc<dyn Observer>, phase: Phase, total: usize, total_bytes: u64) -> Self {
        let progress = Self::growing(observer, phase);
        progress.grow(total, total_bytes);
        progress.settle();
        progress
    }

    /// Starts counting a phase whose size is not known yet: `grow` adds to
    /// it (the first growth sends the 0% event), `settle` says it is all.
    /// Until then the percentage stays below 100, and it never goes down
    /// when the total grows.
    pub fn growing(observer: Arc<dyn Observer>, phase: Phase) -> Self {
        PhaseProgress {
            observer,
            phase,
            totals: Mutex::new(Totals {
                files: 0,
                bytes: 0,
                settled: false,
            }),
            done: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            last_bytes: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            moved: Life::default(),
            started: Instant::now(),
            sent: Mutex::new((0, 0, 0, 0)),
        }
    }

    /// When bytes of the phase last moved (or it began).
    pub fn last_moved(&self) -> tokio::time::Instant {
        self.moved.last()
    }

    /// `files` more files of `bytes` bytes to handle.
    pub fn grow(&self, files: usize, bytes: u64) {
        let first = {
            let mut totals = self.totals();
            let first = totals.files == 0 && files > 0;
            totals.files += files;
            totals.bytes += bytes;
            first
        };
        if first && self.done.load(Ordering::Relaxed) == 0 {
            self.send(0, 0, None);
        }
    }

    /// The phase will not grow any more: sends the 100% event if every
    /// file is already handled, else an event with the final total if the
    /// last one had another.
    pub fn settle(&self) {
        let totals = {
            let mut totals = self.totals();
            if totals.settled {
                return;
            }
            totals.settled = true;
            *totals
        };
        let done = self.done.load(Ordering::Relaxed);
        let sent_total = self.sent.lock().unwrap_or_else(|p| p.into_inner()).3;
        if totals.files > 0 && done == totals.files {
            self.send(done, totals.bytes, None);
        } else if totals.files != sent_total && sent_total > 0 {
            self.send(done, self.bytes.load(Ordering::Relaxed), None);
        }
    }

    fn totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, current: usize, bytes: u64, file: Option<&str>) {
        let totals = *self.totals();
        let bytes = bytes.min(totals.bytes);
        let mut percentage = ((current * 100) as f64 / totals.files.max(1) as f64).round() as u32;
        if !totals.settled {
            percentage = percentage.min(99);
        }
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if current < sent.0 || bytes < sent.1 {
            return;
        }
        percentage = percentage.max(sent.2);
        *sent = (current, bytes, percentage, totals.files);
        self.observer.progress(Progress {
            phase: self.phase,
            current,
            total: totals.files,
            percentage,
            current_file: file.map(str::to_owned),
            bytes,
            total_bytes: totals.bytes,
        });
    }

    /// `n` more bytes moved (a chunk of a file in flight).
    pub fn moved(&self, n: u64) {
        let bytes = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        self.moved.now();
        let now = self.started.elapsed().as_millis() as u64;
        let last_ms = self.last_ms.load(Ordering::Relaxed);
        let due = bytes.saturating_sub(self.last_bytes.load(Ordering::Relaxed)) >= BYTES_STEP
            || now.saturating_sub(last_ms) >= INTERVAL.as_millis() as u64;
        // Of concurrent callers, the one that moves `last_ms` sends.
        if due
            && self
                .last_ms
                .compare_exchange(last_ms, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.last_bytes.store(bytes, Ordering::Relaxed);
            self.send(self.done.load(Ordering::Relaxed), bytes, None);
        }
    }

    /// One more item of the phase finished (successfully or not); `rest`:
    /// its bytes not yet counted by `moved`.
    pub fn advance(&self, file: &str, rest: u64) {
        let bytes = self.bytes.fetch_add(rest, Ordering::Relaxed) + rest;
        let current = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let totals = *self.totals();
        let step = totals.files.div_ceil(EVENTS_PER_PHASE).max(1);
        if current == totals.files && totals.settled {
            // The end: every byte, whatever failed on the way.
            self.send(current, totals.bytes, Some(file));
        } else if current.is_multiple_of(step) {
            self.send(current, bytes, Some(file));
        }
    }
}

/// One file's share of a phase: the bytes it moved, so that finishing it
/// counts only the rest (a store that does not report bytes moves them all
/// at the end).
pub struct FileProgress {
    phase: Arc<PhaseProgress>,
    moved: AtomicU64,
}

impl FileProgress {
    /// A file of `phase`, nothing moved yet.
    pub fn new(phase: &Arc<PhaseProgress>) -> Self {
        FileProgress {
            phase: phase.clone(),
            moved: AtomicU64::new(0),
        }
    }

    /// `n` more bytes of this file moved.
    pub fn moved(&self, n: u64) {
        self.moved.fetch_add(n, Ordering::Relaxed);
        self.phase.moved(n);
    }

    /// Bytes of this file moved at `at`, counted later (with the piece
    /// they are in): a slow body is not taken for silence meanwhile.
    pub fn moving(&self, at: tokio::time::Instant) {
        self.phase.moved.at(at);
    }

    /// The file is done (or failed); `size`: its length.
    pub fn finish(&self, file: &str, size: u64) {
        let moved = self.moved.swap(0, Ordering::Relaxed);
        self.phase.advance(file, size.saturating_sub(moved));
    }
}

impl std::fmt::Debug for FileProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileProgress({} bytes)",
            self.moved.load(Ordering::Relaxed)
        )
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
    fn a_growing_total_never_lowers_the_percentage_and_100_waits_for_the_final_total() {
        let c = Arc::new(Collect::default());
        let p = PhaseProgress::growing(c.clone(), Phase::Download);
        assert!(
            c.0.lock().unwrap().is_empty(),
            "nothing to do yet: no event"
        );
        p.grow(10, 100);
        for i in 0..10 {
            p.advance(&format!("a{i}"), 10);
        }
        // Every known file is done, but the listing goes on: no 100% yet.
        assert!(c.0.lock().unwrap().iter().all(|e| e.percentage < 100));
        p.grow(30, 300);
        for i in 0..30 {
            p.advance(&format!("b{i}"), 10);
        }
        p.settle();
        let events = c.0.lock().unwrap();
        assert_eq!(
            (events[0].current, events[0].total, events[0].percentage),
            (0, 10, 0)
        );
        for pair in events.windows(2) {
            assert!(pair[1].percentage >= pair[0].percentage, "{:?}", pair);
            assert!(pair[1].current >= pair[0].current && pair[1].total >= pair[0].total);
        }
        let last = events.last().unwrap();
        assert_eq!(
            (last.current, last.total, last.percentage, last.bytes),
            (40, 40, 100, 400)
        );
        assert_eq!(events.iter().filter(|e| e.percentage == 100).count(), 1);
    }

    #[test]
    fn the_final_total_is_sent_when_it_is_known() {
        let c = Arc::new(Collect::default());
        let p = PhaseProgress::growing(c.clone(), Phase::Download);
        p.grow(20, 200);
        p.advance("a", 10);
        p.grow(20, 200);
        p.settle();
        p.settle();
        let events = c.0.lock().unwrap();
        let last = events.last().unwrap();
        assert_eq!((last.current, last.total, last.total_bytes), (1, 40, 400));
        assert_eq!(events.iter().filter(|e| e.total == 40).count(), 1);
    }

    #[test]
    fn about_twenty_events_from_0_to_100_with_bytes() {
        let c = Arc::new(Collect::default());
        let p = PhaseProgress::new(c.clone(), Phase::Download, 120, 1200);
        for i in 0..120 {
            p.advance(&format!("f{i}"), 10);
        }
        let events = c.0.lock().unwrap();
        assert_eq!(events.len(), 21);
        assert!(events
            .iter()
            .all(|e| e.total == 120 && e.phase == Phase::Download && e.total_bytes == 1200));
        assert_eq!((events[0].percentage, events[0].bytes), (0, 0));
        let last = events.last().unwrap();
        assert_eq!(
            (last.percentage, last.current, last.bytes),
            (100, 120, 1200)
        );

        let c = Arc::new(Collect::default());
        let p = PhaseProgress::new(c.clone(), Phase::Upload, 3, 0);
        (0..3).for_each(|_| p.advance("x", 0));
        assert_eq!(c.0.lock().unwrap().len(), 4);
    }

    #[test]
    fn an_event_overtaken_by_a_later_one_is_dropped() {
        // Two callers counted 5 then 6 files, and the second sent first.
        let c = Arc::new(Collect::default());
        let p = PhaseProgress::new(c.clone(), Phase::Download, 10, 100);
        p.send(6, 60, Some("b"));
        p.send(5, 50, Some("a"));
        p.send(6, 55, None);
        p.send(6, 65, None);
        let seen: Vec<_> =
            c.0.lock()
                .unwrap()
                .iter()
                .map(|e| (e.current, e.bytes))
                .collect();
        assert_eq!(seen, [(0, 0), (6, 60), (6, 65)]);
    }

    #[test]
    fn a_large_file_reports_while_it_moves() {
        // Fast: one event per BYTES_STEP, not one per 64 KiB chunk.
        let c = Arc::new(Collect::default());
        let total = 8 * BYTES_STEP;
        let p = PhaseProgress::new(c.clone(), Phase::Download, 1, total);
        (0..total / 65536).for_each(|_| p.moved(65536));
        p.advance("big", 0);
        let events = c.0.lock().unwrap();
        assert!((9..=11).contains(&events.len()), "{}", events.len());
        assert!(events.windows(2).all(|w| w[0].bytes <= w[1].bytes));
        assert_eq!(events.last().unwrap().bytes, total);
        drop(events);

        // Slow: one event per INTERVAL.
        let c = Arc::new(Collect::default());
        let p = PhaseProgress::new(c.clone(), Phase::Download, 1, 1 << 20);
        for _ in 0..6 {
            std::thread::sleep(INTERVAL / 2 + Duration::from_millis(5));
            p.moved(1024);
        }
        let events = c.0.lock().unwrap();
        assert!((3..=5).contains(&events.len()), "{}", events.len());
    }
}
