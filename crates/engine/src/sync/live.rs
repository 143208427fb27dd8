//! Live workspaces. Each push that changes something appends what it
//! changed to a small journal object under the prefix, where a watcher made
//! one, so a watcher learns of another instance's push with one HEAD a poll
//! and pulls just those paths. A full pull now and then (the caller's
//! safety net) catches what the journal cannot tell: writers that are not
//! this package, a journal trimmed past where the watcher was.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{Report, Run, Workspace};
use crate::error::{Error, Result};
use crate::keys::validate_relative_path;
use crate::local::conflict_origin;
use crate::model::Condition;
use crate::plan::REMOTE_STATE;
use crate::progress::Level;
use crate::store::small::{get_bytes, put_bytes};
use crate::store::Store;

/// The journal, under the prefix's reserved `.s3ws/` (never synced).
const JOURNAL: &str = "changes.json";
/// Pushes the journal keeps (older ones are trimmed).
const KEEP: usize = 64;
/// A push that changed more paths is entered as "everything": watchers
/// pull whole.
const MAX_PATHS: usize = 1_000;
/// More changed paths than this are pulled whole rather than listed one
/// by one.
const MAX_TARGETED: usize = 100;
/// The most paths the journal holds across its entries.
const MAX_TOTAL: usize = 10_000;
/// The journal is trimmed to stay under this many bytes (about).
const MAX_BYTES: usize = 1 << 20;
/// A larger journal is not this engine's: not read, reset by the next push.
const READ_LIMIT: usize = 4 << 20;
/// Writers racing for the journal: tries before giving up (a watcher's
/// safety-net pull still brings the change).
const WRITE_TRIES: usize = 8;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    /// The last entry's number: one more each push.
    seq: u64,
    entries: Vec<Entry>,
}

/// One push: by which instance, what it changed.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    seq: u64,
    by: String,
    #[serde(default)]
    paths: Vec<String>,
    /// Too many paths to name: a watcher pulls whole.
    #[serde(default)]
    whole: bool,
}

impl Entry {
    /// About the bytes it takes in the journal's JSON.
    fn size(&self) -> usize {
        64 + self.by.len() + self.paths.iter().map(|p| p.len() + 4).sum::<usize>()
    }
}

impl Journal {
    fn parse(body: &[u8]) -> Option<Journal> {
        serde_json::from_slice(body).ok()
    }

    /// The journal with `by`'s push of `paths` appended, trimmed to `KEEP`
    /// entries, `MAX_TOTAL` paths and `MAX_BYTES`.
    fn append(mut self, by: &str, mut paths: Vec<String>) -> Journal {
        // Saturating: a journal someone set to the largest number stays
        // there, and followers then pull whole (`since`).
        self.seq = self.seq.saturating_add(1);
        let whole = paths.len() > MAX_PATHS;
        if whole {
            paths = Vec::new();
        }
        self.entries.push(Entry {
            seq: self.seq,
            by: by.to_owned(),
            paths,
            whole,
        });
        let mut total: usize = self.entries.iter().map(|e| e.paths.len()).sum();
        let mut bytes: usize = self.entries.iter().map(Entry::size).sum();
        while self.entries.len() > 1
            && (self.entries.len() > KEEP || total > MAX_TOTAL || bytes > MAX_BYTES)
        {
            let dropped = self.entries.remove(0);
            total -= dropped.paths.len();
            bytes -= dropped.size();
        }
        if bytes > MAX_BYTES {
            let last = self.entries.last_mut().expect("just pushed");
            last.paths = Vec::new();
            last.whole = true;
        }
        self
    }

    /// What others changed after entry `seen`: `None` when nothing.
    fn since(&self, seen: u64, me: &str) -> Option<RemoteChange> {
        // Rewritten from scratch (or two writers raced where conditions are
        // not applied): the entries cannot say what changed.
        if self.seq <= seen {
            return Some(RemoteChange::Whole);
        }
        let new: Vec<&Entry> = self.entries.iter().filter(|e| e.seq > seen).collect();
        // Numbered seen + 1, seen + 2, ... up to `seq` (no overflow: each
        // is at most `seq`).
        let complete = new.len() as u64 == self.seq - seen
            && new
                .iter()
                .enumerate()
                .all(|(i, e)| e.seq - seen == i as u64 + 1);
        if !complete || new.iter().any(|e| e.whole) {
            return Some(RemoteChange::Whole);
        }
        let mut paths: Vec<String> = new
            .iter()
            .filter(|e| e.by != me)
            .flat_map(|e| e.paths.iter().cloned())
            .collect();
        paths.sort();
        paths.dedup();
        // Many paths: the listings of each would cost more than the full
        // listing. A path that is not a workspace path (a journal written
        // by someone else): the full pull applies the key rules to it.
        if paths.len() > MAX_TARGETED || paths.iter().any(|p| validate_relative_path(p).is_err()) {
            return Some(RemoteChange::Whole);
        }
        (!paths.is_empty()).then_some(RemoteChange::Paths(paths))
    }
}

/// Where a watcher is in the journal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cursor {
    etag: Option<String>,
    seq: u64,
    /// There was no journal, and this watcher does not make one (it only
    /// reads): it waits for one to appear.
    absent: bool,
    /// This watcher makes the journal when there is none.
    makes: bool,
}

/// What other instances changed.
#[derive(Debug)]
enum RemoteChange {
    Paths(Vec<String>),
    Whole,
}

/// What `pull_remote_changes` checks and pulls.
#[derive(Debug)]
pub enum RemoteCheck {
    /// What the journal names since the last check (one HEAD when nothing).
    Journal,
    /// Everything: the safety net for writers that are not this package.
    Whole,
    /// These paths (a push found them changed on S3: a conflict to pull).
    Paths(Vec<String>),
}

/// A journal as read: `None` when it cannot be read (not JSON this engine
/// wrote, or larger than `READ_LIMIT`).
type Read = (Option<String>, Option<Journal>);

impl Workspace {
    fn journal_key(&self) -> String {
        format!("{}{REMOTE_STATE}{JOURNAL}", self.config.prefix)
    }

    async fn read_journal(&self, store: &dyn Store) -> Result<Option<Read>> {
        let fetched = get_bytes(store, &self.journal_key(), READ_LIMIT).await?;
        Ok(fetched.map(|f| (f.etag, f.body.as_deref().and_then(Journal::parse))))
    }

    /// Starts following other instances' pushes: notes how far the journal
    /// goes; when there is none, makes it if `make` (pushes only write to
    /// an existing one), else waits for one to appear. Changes from then on
    /// are what `pull_remote_changes` brings.
    pub async fn follow(&self, make: bool) -> Result<()> {
        let store = self.store().await?;
        let cursor = self.journal_cursor(&*store, make).await?;
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(cursor);
        Ok(())
    }

    /// The journal as it stands (made if missing and `make`).
    async fn journal_cursor(&self, store: &dyn Store, make: bool) -> Result<Cursor> {
        let key = self.journal_key();
        for _ in 0..WRITE_TRIES {
            let found = self.read_journal(store).await?;
            if let Some((etag, journal)) = found {
                let seq = journal.map_or(0, |j| j.seq);
                return Ok(Cursor {
                    etag,
                    seq,
                    absent: false,
                    makes: make,
                });
            }
            if !make {
                return Ok(Cursor {
                    absent: true,
                    ..Cursor::default()
                });
            }
            let empty = serde_json::to_vec(&Journal::default()).expect("serializable");
            match put_bytes(
                store,
                &key,
                &empty,
                "application/json",
                &Condition::IfNoneMatch,
            )
            .await
            {
                Ok(etag) => {
                    return Ok(Cursor {
                        etag,
                        seq: 0,
                        absent: false,
                        makes: true,
                    })
                }
                // Another watcher made it first: read theirs.
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Task(format!(
            "{key} kept changing while this instance tried to read it"
        )))
    }

    /// Pulls what `check` says: for `Journal`, what other instances pushed
    /// since the last such check (or `follow`), the paths the journal names
    /// when it can tell, else everything. `None`: nothing to pull.
    pub async fn pull_remote_changes(
        &self,
        run: &Run,
        check: RemoteCheck,
    ) -> Result<Option<Report>> {
        let (change, next) = match check {
            RemoteCheck::Whole => (RemoteChange::Whole, None),
            RemoteCheck::Paths(paths) => (RemoteChange::Paths(paths), None),
            RemoteCheck::Journal => {
                let at = self
                    .cursor
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let Some(at) = at else {
                    return Err(Error::Task("a journal check before follow".into()));
                };
                let store = self.store().await?;
                match self.journal_since(&*store, &at).await? {
                    Some((change, next)) => (change, Some(next)),
                    None => return Ok(None),
                }
            }
        };
        let mut report = match change {
            RemoteChange::Whole => self.pull_with(SystemTime::now(), run).await?,
            RemoteChange::Paths(paths) => self.pull_paths(&paths, run).await?,
        };
        // Another instance's conflict copy arriving: the conflict is this
        // side's news too (its version is the one at the path).
        for rel in &report.written {
            if let Some((origin, _)) = conflict_origin(rel) {
                if !report.conflicts.contains(&origin) {
                    report.conflicts.push(origin);
                }
            }
        }
        // Also after file errors: those files are reported, and the next
        // safety-net pull tries them again.
        if let Some(next) = next {
            *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(next);
        }
        Ok(Some(report))
    }

    /// The journal's news since `at` and the cursor after it; `None` when
    /// the journal is as `at` saw it.
    async fn journal_since(
        &self,
        store: &dyn Store,
        at: &Cursor,
    ) -> Result<Option<(RemoteChange, Cursor)>> {
        let key = self.journal_key();
        let etag = match store.head(&key).await? {
            Some(info) => info.etag,
            // Still none, for a watcher that does not make it.
            None if at.absent => return Ok(None),
            // Removed (a cleaned-up prefix): made again (or waited for),
            // and all checked.
            None => {
                let next = self.journal_cursor(store, at.makes).await?;
                return Ok(Some((RemoteChange::Whole, next)));
            }
        };
        if etag.is_some() && etag == at.etag {
            return Ok(None);
        }
        let Some((etag, journal)) = self.read_journal(store).await? else {
            let next = self.journal_cursor(store, at.makes).await?;
            return Ok(Some((RemoteChange::Whole, next)));
        };
        let Some(journal) = journal else {
            self.log(
                Level::Warn,
                &format!("{key} is not a journal this engine wrote: pulling everything"),
            );
            let next = Cursor {
                etag,
                seq: 0,
                absent: false,
                makes: at.makes,
            };
            return Ok(Some((RemoteChange::Whole, next)));
        };
        let next = Cursor {
            etag,
            seq: journal.seq,
            absent: false,
            makes: at.makes,
        };
        // A store that gave no ETag when the journal was made: nothing to
        // compare but the number.
        let unchanged = at.etag.is_none() && !at.absent && journal.seq == at.seq;
        let change = if unchanged {
            None
        } else {
            journal.since(at.seq, &self.id)
        };
        Ok(match change {
            // Only this instance's own pushes.
            None => {
                *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(next);
                None
            }
            Some(change) => Some((change, next)),
        })
    }

    /// After a push that changed something: enters it in the journal, if
    /// there is one (a watcher made it). A failure here fails nothing: the
    /// push is done, and watchers' safety-net pulls still find the change.
    pub(crate) async fn announce(&self, store: &dyn Store, report: &Report) {
        let paths: Vec<String> = report
            .written
            .iter()
            .chain(&report.removed)
            .cloned()
            .collect();
        if paths.is_empty() {
            return;
        }
        let key = self.journal_key();
        for _ in 0..WRITE_TRIES {
            let (etag, journal) = match self.read_journal(store).await {
                Ok(Some(found)) => found,
                Ok(None) => return,
                Err(e) => return self.log(Level::Warn, &format!("Not announced to watchers: {e}")),
            };
            // A journal this engine cannot read (or too large) starts again
            // from number 1: followers already past that pull everything
            // (`since`).
            let next = journal.unwrap_or_default().append(&self.id, paths.clone());
            let body = serde_json::to_vec(&next).expect("serializable");
            let condition = etag.map_or(Condition::None, Condition::IfMatch);
            match put_bytes(store, &key, &body, "application/json", &condition).await {
                Ok(_) => return,
                Err(Error::Conflict(_)) => continue,
                Err(e) => return self.log(Level::Warn, &format!("Not announced to watchers: {e}")),
            }
        }
        self.log(
            Level::Warn,
            "Not announced to watchers: the journal kept changing (they still find the \
             change at their next full check)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(change: Option<RemoteChange>) -> Option<Vec<String>> {
        match change {
            Some(RemoteChange::Paths(p)) => Some(p),
            Some(RemoteChange::Whole) => Some(vec!["<whole>".into()]),
            None => None,
        }
    }

    #[test]
    fn a_watcher_gets_the_paths_others_pushed_since_it_looked() {
        let j = Journal::default()
            .append("a", vec!["x".into(), "y".into()])
            .append("me", vec!["mine".into()])
            .append("b", vec!["y".into(), "z".into()]);
        assert_eq!(
            paths(j.since(0, "me")),
            Some(vec!["x".into(), "y".into(), "z".into()])
        );
        assert_eq!(paths(j.since(2, "me")), Some(vec!["y".into(), "z".into()]));
        // Its own pushes only: nothing to pull.
        let own = Journal::default().append("me", vec!["mine".into()]);
        assert_eq!(paths(own.since(0, "me")), None);
    }

    #[test]
    fn what_the_entries_cannot_tell_is_a_whole_pull() {
        let whole = Some(vec!["<whole>".to_owned()]);
        // Trimmed past where the watcher was.
        let mut j = Journal::default();
        for i in 0..KEEP + 3 {
            j = j.append("a", vec![format!("f{i}")]);
        }
        assert_eq!(j.entries.len(), KEEP);
        assert_eq!(paths(j.since(1, "me")), whole);
        assert!(paths(j.since(3, "me")).is_some_and(|p| p.len() == KEEP));
        // A push too large to name.
        let big = Journal::default().append("a", (0..=MAX_PATHS).map(|i| i.to_string()).collect());
        assert_eq!(paths(big.since(0, "me")), whole);
        // More than a targeted pull is worth, or not a workspace path.
        let many = (0..=MAX_TARGETED).map(|i| format!("f{i}")).collect();
        assert_eq!(
            paths(Journal::default().append("a", many).since(0, "me")),
            whole
        );
        let unsafe_path = Journal::default().append("a", vec!["../outside".into()]);
        assert_eq!(paths(unsafe_path.since(0, "me")), whole);
        // Rewritten from scratch, or overwritten at the same number.
        assert_eq!(
            paths(
                Journal::default()
                    .append("a", vec!["x".into()])
                    .since(5, "me")
            ),
            whole
        );
        assert_eq!(
            paths(
                Journal::default()
                    .append("a", vec!["x".into()])
                    .since(1, "me")
            ),
            whole
        );
    }

    #[test]
    fn long_paths_keep_the_journal_under_its_byte_limit() {
        let long = |i: usize, p: usize| format!("{}/{i}/{p}.txt", "d".repeat(450));
        let mut j = Journal::default();
        for i in 0..12 {
            j = j.append("a", (0..MAX_PATHS).map(|p| long(i, p)).collect());
            let bytes = serde_json::to_vec(&j).unwrap().len();
            assert!(
                bytes <= MAX_BYTES + MAX_BYTES / 10,
                "{bytes} bytes after push {i}"
            );
        }
        // One push alone too large to name: entered as "everything".
        let one = Journal::default().append(
            "a",
            (0..MAX_PATHS)
                .map(|p| long(0, p) + &"e".repeat(600))
                .collect(),
        );
        assert!(one.entries[0].whole && one.entries[0].paths.is_empty());
    }

    #[test]
    fn a_journal_at_the_largest_number_does_not_overflow() {
        let top = Journal {
            seq: u64::MAX,
            entries: Vec::new(),
        };
        let next = top.append("a", vec!["x".into()]);
        assert_eq!(next.seq, u64::MAX);
        assert_eq!(
            paths(next.since(u64::MAX, "me")),
            Some(vec!["<whole>".into()])
        );
        assert!(paths(next.since(u64::MAX - 1, "me")).is_some());
    }

    #[test]
    fn the_journal_stays_small() {
        let mut j = Journal::default();
        for i in 0..30 {
            j = j.append("a", (0..MAX_PATHS).map(|p| format!("{i}/{p}")).collect());
        }
        let total: usize = j.entries.iter().map(|e| e.paths.len()).sum();
        assert!(total <= MAX_TOTAL, "{total}");
        assert_eq!(j.seq, 30);
    }
}
