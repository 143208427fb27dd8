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
/// The largest journal this engine reads (it writes far less).
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

impl Journal {
    fn parse(body: &[u8]) -> Option<Journal> {
        serde_json::from_slice(body).ok()
    }

    /// The journal with `by`'s push of `paths` appended, trimmed.
    fn append(mut self, by: &str, mut paths: Vec<String>) -> Journal {
        self.seq += 1;
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
        while self.entries.len() > KEEP || (total > MAX_TOTAL && self.entries.len() > 1) {
            total -= self.entries.remove(0).paths.len();
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
        let complete = new.len() as u64 == self.seq - seen
            && new.iter().zip(seen + 1..).all(|(e, n)| e.seq == n);
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
}

/// What other instances changed.
#[derive(Debug)]
enum RemoteChange {
    Paths(Vec<String>),
    Whole,
}

impl Workspace {
    fn journal_key(&self) -> String {
        format!("{}{REMOTE_STATE}{JOURNAL}", self.config.prefix)
    }

    /// Starts following other instances' pushes: makes the journal if
    /// there is none (pushes only write to an existing one), and notes how
    /// far it goes. Changes from then on are what `pull_remote_changes`
    /// brings.
    pub async fn follow(&self) -> Result<()> {
        let store = self.store().await?;
        let cursor = self.journal_cursor(&*store).await?;
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(cursor);
        Ok(())
    }

    /// The journal as it stands, made if missing.
    async fn journal_cursor(&self, store: &dyn Store) -> Result<Cursor> {
        let key = self.journal_key();
        for _ in 0..WRITE_TRIES {
            if let Some((etag, body)) = get_bytes(store, &key, READ_LIMIT).await? {
                let seq = Journal::parse(&body).map_or(0, |j| j.seq);
                return Ok(Cursor { etag, seq });
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
                Ok(etag) => return Ok(Cursor { etag, seq: 0 }),
                // Another watcher made it first: read theirs.
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Task(format!(
            "{key} kept changing while this instance tried to read it"
        )))
    }

    /// Pulls what other instances pushed since the last call (or `follow`):
    /// one HEAD when nothing changed; the paths the journal names when it
    /// can tell; else a whole pull. `whole` asks for a whole pull anyway
    /// (the safety net, for writers that are not this package). `None`:
    /// nothing to pull.
    pub async fn pull_remote_changes(&self, run: &Run, whole: bool) -> Result<Option<Report>> {
        let store = self.store().await?;
        let at = self
            .cursor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(at) = at else {
            return Err(Error::Task("pull_remote_changes before follow".into()));
        };
        // The safety net leaves the cursor: what the journal names since
        // is pulled again by name (cheap, and nothing is missed), and
        // reading the journal here would cost a request each time.
        let (change, next) = if whole {
            (RemoteChange::Whole, at)
        } else {
            match self.journal_since(&*store, &at).await? {
                Some(found) => found,
                None => return Ok(None),
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
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(next);
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
            // Removed (a cleaned-up prefix): made again, and all checked.
            None => {
                return Ok(Some((
                    RemoteChange::Whole,
                    self.journal_cursor(store).await?,
                )))
            }
        };
        if etag.is_some() && etag == at.etag {
            return Ok(None);
        }
        let Some((etag, body)) = get_bytes(store, &key, READ_LIMIT).await? else {
            return Ok(Some((
                RemoteChange::Whole,
                self.journal_cursor(store).await?,
            )));
        };
        let Some(journal) = Journal::parse(&body) else {
            self.log(
                Level::Warn,
                &format!("{key} is not a journal this engine wrote: pulling everything"),
            );
            return Ok(Some((RemoteChange::Whole, Cursor { etag, seq: 0 })));
        };
        let next = Cursor {
            etag,
            seq: journal.seq,
        };
        // A store that gave no ETag when the journal was made: nothing to
        // compare but the number.
        let unchanged = at.etag.is_none() && journal.seq == at.seq;
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
            let (etag, body) = match get_bytes(store, &key, READ_LIMIT).await {
                Ok(Some(found)) => found,
                Ok(None) => return,
                Err(e) => return self.log(Level::Warn, &format!("Not announced to watchers: {e}")),
            };
            // A journal this engine cannot read starts again from number 1:
            // followers already past that pull everything (`since`).
            let journal = Journal::parse(&body).unwrap_or_default();
            let next = journal.append(&self.id, paths.clone());
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
