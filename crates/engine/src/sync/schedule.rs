//! A pull as it runs. Downloads start as soon as a part of the workspace
//! is decided, while the rest is still listed and planned:
//! - a part someone waits for (the priority subtree, paths passed to
//!   `ensure`) is listed on its own (one `ListObjectsV2` of the longer
//!   prefix), planned against the base and a scan of that part, and its
//!   downloads go to the front of the queue;
//! - a key of the full listing that is new on both sides and can no longer
//!   clash (see `Early`) is downloaded before the listing ends;
//! - the rest is planned once the listing ends, leaving out every part
//!   already planned, so nothing is decided (or downloaded) twice.
//!
//! A part is planned early only where that decides it exactly as the full
//! plan would: never on a filesystem that folds names (a key outside the
//! part could name the same file), never when a directory the part needs
//! is a file here or an object on S3 (the file/directory clash is settled
//! by the full listing). Such a part waits for the full plan, and then
//! still jumps the queue.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{Id, JoinSet};

use super::{Opened, Report, State, Workspace};
use crate::base::SyncBase;
use crate::blocking::blocking;
use crate::error::{Action, Error, FileError, Result, Warning, WarningCode};
use crate::ignore_rules::IgnoreRules;
use crate::keys::{covers, key_for, parent_dirs, Root};
use crate::local::{remove_file_and_empty_parents, scan, scan_part, Dir};
use crate::model::{Folding, RemoteObject, Scan};
use crate::plan::{
    guard_local_deletes, remote_files, shapes_clash, Download, LocalDelete, PullPlan, PullRules,
    RemoteFiles, Scope,
};
use crate::progress::{FileProgress, Level, Phase, PhaseProgress};
use crate::store::{list_all, list_pages, Store};
use crate::transfer::{download, CopyNames, Downloaded, Halt};

/// Paths someone waits for: the pull moves them to the front, and says
/// when they are current on disk.
pub(crate) struct Want {
    pub roots: Vec<Root>,
    pub reply: Reply,
}

/// Who waits.
pub(crate) enum Reply {
    /// The pull's own priority prefix: the observer's `priority_settled`.
    Priority,
    /// A call of `ensure`.
    Ensure(oneshot::Sender<Ensured>),
}

/// What `ensure` found: each named path is now as the pull rules leave it.
#[derive(Debug, Clone, Default)]
pub struct Ensured {
    /// The paths as named (`dir/` for a directory).
    pub paths: Vec<String>,
    /// Files downloaded for them while the call waited.
    pub downloaded: usize,
    /// Named paths S3 does not have (a directory: no object under it).
    pub missing: Vec<String>,
    /// Files under the named paths that failed to download.
    pub errors: Vec<FileError>,
}

/// A waiting `Want`, with what it still waits for.
struct Waiter {
    roots: Vec<Root>,
    reply: Reply,
    /// Downloads under its roots, queued or running.
    outstanding: HashSet<String>,
    downloaded: usize,
    errors: Vec<FileError>,
}

/// How a pull runs: the whole workspace, or only the paths of an `ensure`
/// (which becomes a whole pull when a path cannot be planned on its own).
pub(crate) enum Mode {
    Whole,
    Only(Want),
}

type Listed = (Root, Result<Option<Vec<RemoteObject>>>);
type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Finished = (String, bool, Option<Result<Downloaded>>);

/// The keys of the full listing that may be downloaded before it ends: new
/// on both sides (no base entry, no local file), and beyond any clash.
/// Listings come in key order, so once the listing has passed `key/` no
/// key below it can come, and every key above it has been seen.
#[derive(Default)]
struct Early {
    /// Files listed so far that are not decided yet, by path.
    pending: BTreeMap<String, RemoteObject>,
    /// Every directory above a file listed so far (the files are in
    /// `Pulling::known`).
    dirs: HashSet<String>,
    /// The last key listed.
    last_key: String,
}

/// The state of a running pull.
struct Pulling<'a> {
    ws: &'a Workspace,
    store: Arc<dyn Store>,
    root: Arc<Dir>,
    rules: IgnoreRules,
    base: SyncBase,
    folding: Folding,
    started_ns: i128,
    pull_rules: PullRules,
    report: Report,
    names: Arc<CopyNames>,
    progress: Arc<PhaseProgress>,
    halt: Halt,
    /// Downloads not started yet: those someone waits for (started first),
    /// and the rest (held back while a part is being listed, which may
    /// add urgent ones).
    urgent: VecDeque<Download>,
    queue: VecDeque<Download>,
    /// Downloads running, by task.
    running: HashMap<Id, String>,
    /// What the full plan decides: everything but the parts planned early.
    rest: Scope,
    /// Parts being listed on their own, and those planned.
    listing_parts: Vec<Root>,
    planned_parts: Vec<Root>,
    /// Parts that could not be planned on their own: the full plan's.
    left_to_whole: Vec<Root>,
    /// Temp files of interrupted syncs the full scan found: removed at the
    /// end (the scan may also have seen this pull's own, since renamed).
    leftover_temps: Vec<String>,
    /// Whether the full listing was started, and whether it was planned.
    whole: bool,
    whole_planned: bool,
    /// Paths S3 has, as listed: by the full listing so far (also the
    /// shadowed ones: `Early` needs every listed file) and by the parts
    /// (for `Ensured::missing`).
    known: BTreeSet<String>,
    waiters: Vec<Waiter>,
    /// Local deletions of parts planned early: guarded with the rest's.
    deferred: Vec<LocalDelete>,
    failed: usize,
}

impl Workspace {
    /// Runs a pull (`Mode::Whole`) or an `ensure` alone: what `pull` does
    /// after the lock is taken. `inbox` brings `ensure` calls made while it
    /// runs.
    pub(crate) async fn run_pull(
        &self,
        state: &mut State,
        started_ns: i128,
        (mode, restore_deleted): (Mode, bool),
        inbox: Option<mpsc::UnboundedReceiver<Want>>,
    ) -> Result<Report> {
        let opened = self.open(true, false).await?;
        let store = self.store().await?;
        let Opened {
            root, state: dir, ..
        } = &opened;
        let dir = dir.clone();
        let folding = blocking(move || crate::local::probe_folding(&dir)).await?;
        let mut base = self.base(state, &opened, false).await?;
        let rules = self.current_rules(root).await?;
        let mut report = Report::default();
        self.report_trouble(&mut base, &mut report);
        let names = Arc::new(CopyNames {
            rules: rules.clone(),
            tag: base.copy_tag(),
        });
        let progress = Arc::new(PhaseProgress::growing(
            self.observer.clone(),
            Phase::Download,
        ));
        let mut run = Pulling {
            ws: self,
            store,
            root: root.clone(),
            rules,
            base,
            folding,
            started_ns,
            pull_rules: PullRules {
                policy: self.config.conflict_policy,
                max_delete_percent: self.config.max_delete_percent,
                restore_deleted,
            },
            report,
            names,
            progress,
            halt: Halt::default(),
            urgent: VecDeque::new(),
            queue: VecDeque::new(),
            running: HashMap::new(),
            rest: Scope::all(),
            listing_parts: Vec::new(),
            planned_parts: Vec::new(),
            left_to_whole: Vec::new(),
            leftover_temps: Vec::new(),
            whole: false,
            whole_planned: false,
            known: BTreeSet::new(),
            waiters: Vec::new(),
            deferred: Vec::new(),
            failed: 0,
        };
        let whole = match mode {
            Mode::Whole => {
                if let Some(p) = &self.config.priority_prefix {
                    let want = Want {
                        roots: vec![format!("{}/", p.trim_end_matches('/'))],
                        reply: Reply::Priority,
                    };
                    run.want(want);
                }
                true
            }
            Mode::Only(want) => {
                run.want(want);
                false
            }
        };
        let result = run.drive(whole, inbox).await;
        let Pulling {
            mut base,
            report,
            waiters,
            ..
        } = run;
        // Priority waiters settle however the pull ended; `ensure` callers
        // whose pull failed try on their own.
        if waiters.iter().any(|w| matches!(w.reply, Reply::Priority)) {
            self.observer.priority_settled();
        }
        // After a failure the journal holds what was done; a base that
        // did not exist stays absent (a failed first pull is no sync).
        result?;
        self.warn_if_unrecorded(base.ensure_written());
        self.save_base(state, base).await;
        Ok(report)
    }
}

impl Pulling<'_> {
    /// Runs the pull to its end: listings, plans, downloads and requests
    /// as they come; then the local deletions.
    async fn drive(
        &mut self,
        whole: bool,
        mut inbox: Option<mpsc::UnboundedReceiver<Want>>,
    ) -> Result<()> {
        let store = self.store.clone();
        let prefix = self.ws.config.prefix.clone();
        let mut parts: FuturesUnordered<Boxed<Listed>> = FuturesUnordered::new();
        let mut pages = None;
        let mut listing: Vec<RemoteObject> = Vec::new();
        let mut listed = false;
        let mut scanning: Option<Boxed<Result<Scan>>> = None;
        let mut scanned: Option<Scan> = None;
        let mut early = Early::default();
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let limit = self.ws.config.download_concurrency.max(1);
        if whole {
            self.whole = true;
        }
        loop {
            // Parts to list, and the full listing once something needs it.
            for root in self.take_unlisted() {
                parts.push(self.list_part(root));
            }
            if self.whole && pages.is_none() && !listed {
                pages = Some(Box::pin(list_pages(&*store, &prefix)));
                let (root, rules) = (self.root.clone(), self.rules.clone());
                scanning = Some(Box::pin(async move {
                    blocking(move || scan(&root, &rules)).await
                }));
            }
            if self.whole
                && !self.whole_planned
                && listed
                && scanned.is_some()
                && self.listing_parts.is_empty()
            {
                let local = scanned.take().expect("checked");
                let objects = std::mem::take(&mut listing);
                self.plan_whole(objects, local).await;
            }
            while self.running.len() < limit {
                let next = match self.urgent.pop_front() {
                    Some(d) => Some(d),
                    None if self.listing_parts.is_empty() => self.queue.pop_front(),
                    None => None,
                };
                let Some(d) = next else {
                    break;
                };
                let rel = d.rel.clone();
                let handle = tasks.spawn(self.ws.transfers.track_future(self.start(d)));
                self.running.insert(handle.id(), rel);
            }
            self.answer_waiters();
            let settled = (!self.whole || self.whole_planned) && self.listing_parts.is_empty();
            let idle = self.urgent.is_empty() && self.queue.is_empty() && self.running.is_empty();
            if settled && idle {
                break;
            }
            tokio::select! {
                Some(want) = recv(&mut inbox) => self.want(want),
                Some((root, found)) = parts.next(), if !parts.is_empty() => {
                    self.part_listed(root, found).await;
                }
                page = next_page(&mut pages), if pages.is_some() => match page {
                    Some(page) => {
                        let page = page?;
                        self.listed_page(&mut early, &page);
                        listing.extend(page);
                        if let Some(local) = &scanned {
                            self.decide_early(&mut early, local);
                        }
                    }
                    None => {
                        pages = None;
                        listed = true;
                    }
                },
                local = async { scanning.as_mut().expect("guarded").await }, if scanning.is_some() => {
                    scanning = None;
                    let local = local?;
                    if !listed {
                        self.decide_early(&mut early, &local);
                    }
                    scanned = Some(local);
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    self.finished(joined);
                }
                else => return Err(Error::Task("the pull stalled: nothing left to wait for".into())),
            }
        }
        self.progress.settle();
        self.delete_deferred(whole).await;
        Ok(())
    }

    /// Roots waiters need that no part listing or plan covers yet: each is
    /// listed on its own when that can decide it, else the full listing
    /// will.
    fn take_unlisted(&mut self) -> Vec<Root> {
        if self.whole_planned {
            return Vec::new();
        }
        let mut out: Vec<Root> = Vec::new();
        for w in &self.waiters {
            for r in &w.roots {
                let covered = self
                    .listing_parts
                    .iter()
                    .chain(&self.planned_parts)
                    .chain(&self.left_to_whole)
                    .chain(&out)
                    .any(|p| covers(p, r));
                if !covered {
                    out.push(r.clone());
                }
            }
        }
        if self.folding.case || self.folding.unicode {
            // A key outside a part could name one of its files.
            for root in out {
                self.leave_to_whole(root, "this filesystem folds names");
            }
            return Vec::new();
        }
        self.listing_parts.extend(out.iter().cloned());
        out
    }

    /// Lists the part `root` on its own: its objects, or `None` when a
    /// directory it needs is an object (or a file root is also a
    /// directory) on S3.
    fn list_part(&self, root: Root) -> Boxed<Listed> {
        let store = self.store.clone();
        let prefix = self.ws.config.prefix.clone();
        Box::pin(async move {
            let listed = async {
                let key = format!("{prefix}{root}");
                let heads = parent_dirs(&root).map(|dir| {
                    let store = store.clone();
                    let key = format!("{prefix}{dir}");
                    async move { store.head(&key).await }
                });
                let (objects, heads) =
                    tokio::join!(list_all(&*store, &key), futures::future::join_all(heads));
                let mut objects = objects?;
                for head in heads {
                    if head?.is_some() {
                        return Ok(None);
                    }
                }
                if !root.ends_with('/') {
                    // `a/b.txt` lists `a/b.txt.bak` too; `a/b.txt/x` is a clash.
                    let below = format!("{key}/");
                    if objects.iter().any(|o| o.key.starts_with(&below)) {
                        return Ok(None);
                    }
                    objects.retain(|o| o.key == key);
                }
                Ok(Some(objects))
            };
            let found = listed.await;
            (root, found)
        })
    }

    /// A part's listing came: plans the part against a scan of it, or
    /// leaves it to the full plan.
    async fn part_listed(&mut self, root: Root, found: Result<Option<Vec<RemoteObject>>>) {
        self.listing_parts.retain(|r| *r != root);
        let objects = match found {
            Ok(Some(objects)) => objects,
            Ok(None) => return self.leave_to_whole(root, "a directory it needs is an object"),
            Err(e) => return self.leave_to_whole(root, &format!("listing it failed: {e}")),
        };
        let ws = self.ws;
        let (dir, rules, roots) = (self.root.clone(), self.rules.clone(), vec![root.clone()]);
        let local = match blocking(move || scan_part(&dir, &rules, &roots)).await {
            Ok(Some(local)) => local,
            Ok(None) => return self.leave_to_whole(root, "a directory it needs is a file here"),
            Err(e) => return self.leave_to_whole(root, &format!("scanning it failed: {e}")),
        };
        let remote = remote_files(&ws.config.prefix, &objects, &self.rules, self.folding);
        self.known.extend(remote.files.keys().cloned());
        let scope = self.rest.within(vec![root.clone()]);
        ws.log(
            Level::Debug,
            &format!("Planning {root} ahead of the rest of the pull"),
        );
        let plan = self.plan(remote, &local, &scope).await;
        self.rest.exclude(&root);
        self.planned_parts.push(root);
        let (now, later) = split_deletes(&plan);
        self.deferred.extend(later);
        self.apply(plan, now, true).await;
    }

    /// Plans the paths of `scope` (see `Workspace::plan_with`).
    async fn plan(&self, remote: RemoteFiles, local: &Scan, scope: &Scope) -> PullPlan {
        self.ws
            .plan_with(
                &self.store,
                &self.root,
                remote,
                local,
                &self.base,
                self.started_ns,
                self.pull_rules,
                scope,
            )
            .await
    }

    /// `root` cannot be planned on its own: the full listing decides it.
    fn leave_to_whole(&mut self, root: Root, why: &str) {
        self.ws.log(
            Level::Debug,
            &format!("{root} is planned with the whole listing: {why}"),
        );
        self.left_to_whole.push(root);
        self.whole = true;
    }

    /// Plans what no part decided, once the full listing and scan are in.
    async fn plan_whole(&mut self, objects: Vec<RemoteObject>, local: Scan) {
        let ws = self.ws;
        let remote = remote_files(&ws.config.prefix, &objects, &self.rules, self.folding);
        for (key, why) in &remote.skipped {
            ws.log(Level::Warn, &format!("Skipping object {key}: {why}"));
        }
        let scope = self.rest.clone();
        let mut plan = self.plan(remote, &local, &scope).await;
        plan.deletes.append(&mut self.deferred);
        guard_local_deletes(&mut plan, local.files.len(), &self.base, self.pull_rules);
        let (now, later) = split_deletes(&plan);
        self.deferred = later;
        self.whole_planned = true;
        self.leftover_temps = local.temp_files;
        self.apply(plan, now, false).await;
        self.progress.settle();
    }

    /// Carries out what a plan decided besides its downloads and later
    /// deletions, then queues the downloads (`urgent`: in front).
    async fn apply(&mut self, plan: PullPlan, deletes_now: Vec<LocalDelete>, urgent: bool) {
        let ws = self.ws;
        let report = &mut self.report;
        report.unchanged += plan.unchanged;
        report.errors.extend(plan.errors);
        report.conflicts.extend(plan.conflicts);
        ws.add_warnings(report, plan.warnings);
        for (rel, entry) in plan.record {
            ws.warn_if_unrecorded(self.base.record(rel, entry));
        }
        for rel in &plan.forget {
            ws.warn_if_unrecorded(self.base.forget(rel));
        }
        // What stands where a download must go (a file where S3 now has a
        // directory, files where it has a file) goes first.
        ws.set_aside(&self.root, &self.names, plan.set_aside, report)
            .await;
        report.deleted += ws
            .delete_local(&self.root, deletes_now, &mut self.base, report)
            .await;
        self.enqueue(plan.downloads, urgent);
    }

    /// Queues downloads: as urgent when `urgent` or someone waits for them.
    fn enqueue(&mut self, downloads: Vec<Download>, urgent: bool) {
        let bytes = downloads.iter().filter_map(|d| d.size).sum();
        self.progress.grow(downloads.len(), bytes);
        for d in downloads {
            let mut wanted = false;
            for w in &mut self.waiters {
                if w.roots.iter().any(|r| covers(r, &d.rel)) {
                    w.outstanding.insert(d.rel.clone());
                    wanted = true;
                }
            }
            if urgent || wanted {
                self.urgent.push_back(d);
            } else {
                self.queue.push_back(d);
            }
        }
    }

    /// Someone waits for `want.roots`: what is queued for them becomes
    /// urgent; what is not listed yet will be listed on its own.
    fn want(&mut self, want: Want) {
        let covered = |rel: &str| want.roots.iter().any(|r| covers(r, rel));
        let mut outstanding: HashSet<String> = self
            .running
            .values()
            .filter(|rel| covered(rel))
            .cloned()
            .collect();
        outstanding.extend(
            self.urgent
                .iter()
                .filter(|d| covered(&d.rel))
                .map(|d| d.rel.clone()),
        );
        let (wanted, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|d| covered(&d.rel));
        outstanding.extend(wanted.iter().map(|d| d.rel.clone()));
        self.urgent.extend(wanted);
        self.queue = rest;
        self.waiters.push(Waiter {
            roots: want.roots,
            reply: want.reply,
            outstanding,
            downloaded: 0,
            errors: Vec::new(),
        });
    }

    /// Answers the waiters whose paths are all decided and downloaded.
    fn answer_waiters(&mut self) {
        let decided =
            |r: &str| self.whole_planned || self.planned_parts.iter().any(|p| covers(p, r));
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.outstanding.is_empty() && w.roots.iter().all(|r| decided(r)));
        self.waiters = waiting;
        for w in ready {
            match w.reply {
                Reply::Priority => self.ws.observer.priority_settled(),
                Reply::Ensure(reply) => {
                    let missing = w
                        .roots
                        .iter()
                        .filter(|r| {
                            !self
                                .known
                                .range(r.to_string()..)
                                .next()
                                .is_some_and(|k| covers(r, k))
                        })
                        .cloned()
                        .collect();
                    // The caller may have stopped waiting.
                    let _ = reply.send(Ensured {
                        paths: w.roots,
                        downloaded: w.downloaded,
                        missing,
                        errors: w.errors,
                    });
                }
            }
        }
    }

    /// A page of the full listing came: what it settles for `Early`.
    fn listed_page(&mut self, early: &mut Early, page: &[RemoteObject]) {
        let Some(last) = page.last() else {
            return;
        };
        let prefix = &self.ws.config.prefix;
        let remote = remote_files(prefix, page, &self.rules, self.folding);
        for rel in remote.files.keys().chain(remote.shadowed.keys()) {
            self.known.insert(rel.clone());
            for dir in parent_dirs(rel) {
                early.dirs.insert(dir.to_owned());
            }
        }
        early.pending.extend(remote.files);
        early.last_key.clone_from(&last.key);
    }

    /// Starts the downloads of listed keys that are new on both sides and
    /// past any clash (see `Early`); the full plan decides the rest.
    fn decide_early(&mut self, early: &mut Early, local: &Scan) {
        let unsafe_here = self.folding.case || self.folding.unicode || self.base.recovering();
        if unsafe_here {
            early.pending.clear();
            return;
        }
        let prefix = &self.ws.config.prefix;
        let skipped: HashSet<&str> = local.skipped.iter().map(|s| s.path.as_str()).collect();
        let mut start = Vec::new();
        while let Some(entry) = early.pending.first_entry() {
            let rel = entry.key();
            // Past `key/`: nothing below the key can still be listed.
            if early.last_key.as_str() < format!("{prefix}{rel}0").as_str() {
                break;
            }
            let (rel, obj) = entry.remove_entry();
            let below = format!("{rel}/");
            let clear = !early.dirs.contains(&rel)
                && parent_dirs(&rel).all(|d| {
                    !self.known.contains(d) && !local.files.contains_key(d) && !skipped.contains(d)
                })
                && !skipped.contains(rel.as_str())
                && !local.files.contains_key(&rel)
                && !local.is_under_unreadable(&rel)
                && local
                    .files
                    .range(below.clone()..)
                    .next()
                    .is_none_or(|(r, _)| !r.starts_with(&below))
                && self.base.get(&rel).is_none()
                && self.rest.contains(&rel)
                && !self.listing_parts.iter().any(|p| covers(p, &rel));
            if clear {
                self.rest.exclude(&rel);
                start.push(Download {
                    key: obj.key,
                    size: obj.size,
                    etag: obj.etag,
                    last_modified: obj.last_modified,
                    rel,
                    replaces: None,
                    keep_local: false,
                    beside: false,
                });
            }
        }
        if !start.is_empty() {
            self.enqueue(start, false);
        }
    }

    /// One download, as a task.
    fn start(&self, d: Download) -> impl Future<Output = Finished> + Send + 'static {
        let (store, root) = (self.store.clone(), self.root.clone());
        let (halt, names) = (self.halt.clone(), self.names.clone());
        let progress = FileProgress::new(&self.progress);
        let stall = self.ws.config.stall_timeout;
        async move {
            let result = halt
                .run(|| download(&*store, &root, &d, &names, stall, &progress))
                .await;
            progress.finish(&d.rel, d.size.unwrap_or(0));
            (d.rel, d.beside, result)
        }
    }

    /// A download ended: recorded in the base at once, reported, and
    /// counted for whoever waits for it.
    fn finished(&mut self, joined: std::result::Result<(Id, Finished), tokio::task::JoinError>) {
        let ws = self.ws;
        let (rel, outcome) = match joined {
            Ok((id, (rel, beside, result))) => {
                self.running.remove(&id);
                let outcome = ws.downloaded(
                    &self.halt,
                    (&rel, beside),
                    result,
                    &mut self.base,
                    &mut self.report,
                );
                (rel, outcome)
            }
            Err(e) => {
                let rel = self.running.remove(&e.id()).unwrap_or_default();
                let err = FileError::new(
                    Action::Download,
                    rel.clone(),
                    &Error::task("download task", e),
                );
                self.report.errors.push(err.clone());
                (rel, Outcome::Failed(Some(err)))
            }
        };
        if matches!(outcome, Outcome::Failed(_)) {
            self.failed += 1;
        }
        let outcome_downloaded = matches!(outcome, Outcome::Downloaded);
        // Halted: the failure that stopped the pull, once reported, is why.
        let failure = match outcome {
            Outcome::Downloaded | Outcome::Left => None,
            Outcome::Failed(Some(e)) => Some(e),
            Outcome::Failed(None) => Some(halted_by(&self.report, &rel)),
        };
        for w in &mut self.waiters {
            if w.outstanding.remove(&rel) {
                match &failure {
                    None if outcome_downloaded => w.downloaded += 1,
                    None => {}
                    Some(e) => w.errors.push(e.clone()),
                }
            }
        }
    }

    /// The deletions left for the end; and, after a whole pull that
    /// compared every path, the base's full-sync mark.
    async fn delete_deferred(&mut self, whole: bool) {
        let ws = self.ws;
        let mut deletes = std::mem::take(&mut self.deferred);
        if !self.whole_planned && !deletes.is_empty() {
            // An `ensure` alone: its parts' deletions are weighed by
            // themselves.
            let mut plan = PullPlan {
                deletes,
                ..PullPlan::default()
            };
            // The files of the parts only: a first sync's guard is stricter.
            let parts = plan.deletes.len();
            guard_local_deletes(&mut plan, parts, &self.base, self.pull_rules);
            self.report.errors.extend(plan.errors);
            deletes = plan.deletes;
        }
        self.report.deleted += ws
            .delete_local(&self.root, deletes, &mut self.base, &mut self.report)
            .await;
        let temps = std::mem::take(&mut self.leftover_temps);
        if !temps.is_empty() {
            let n = temps.len();
            ws.log(
                Level::Info,
                &format!("Removing {n} temp files left by an interrupted sync"),
            );
        }
        for rel in temps {
            let root = self.root.clone();
            ws.log(Level::Debug, &format!("Removing leftover temp file {rel}"));
            let _ = blocking(move || remove_file_and_empty_parents(&root, &rel)).await;
        }
        // Every path was compared with S3: the reference of the deletion
        // guard, and the end of a recovery (unless some download failed:
        // that path is still unknown).
        if whole && self.whole_planned && self.failed == 0 && !self.halt.halted() {
            ws.warn_if_unrecorded(self.base.full_sync_done());
        }
    }
}

/// How one download ended, for those waiting for it.
pub(super) enum Outcome {
    Downloaded,
    /// Left as it is (the agent wrote it meanwhile, or holds it open).
    Left,
    /// Failed (`None`: a failure already reported, or the pull halted).
    Failed(Option<FileError>),
}

impl Workspace {
    /// Records and reports one finished download.
    pub(super) fn downloaded(
        &self,
        halt: &Halt,
        (rel, beside): (&str, bool),
        result: Option<Result<Downloaded>>,
        base: &mut SyncBase,
        report: &mut Report,
    ) -> Outcome {
        let Some(result) = result else {
            return Outcome::Failed(None);
        };
        match result {
            Ok(done) => {
                if let Some((copy, c)) = &done.conflict_copy {
                    let message = if beside {
                        format!(
                            "Conflict: {rel} changed both here (after the pull was called) \
                             and on S3; the local version stays, S3's was saved as {copy}"
                        )
                    } else {
                        format!(
                            "Conflict: {rel} changed both here and on S3; S3's version was \
                             downloaded and the local one kept as {copy}"
                        )
                    };
                    self.log(Level::Warn, &message);
                    report.conflicts.push(rel.to_owned());
                    self.copy_made(report, rel, copy, c.ignored);
                }
                self.log(Level::Debug, &format!("Downloaded {rel}"));
                report.bytes += done.entry.stat.size;
                self.warn_if_unrecorded(base.record(rel.to_owned(), done.entry));
                report.transferred += 1;
                Outcome::Downloaded
            }
            // The agent wrote the file while it downloaded: its version stays.
            Err(Error::Changed(m)) => {
                self.log(Level::Info, &m);
                Outcome::Left
            }
            Err(Error::InUse(m)) => {
                self.log(Level::Warn, &m);
                report
                    .warnings
                    .push(Warning::new(rel, WarningCode::OpenForWriting, m));
                Outcome::Left
            }
            Err(e) if !halt.should_report(&e) => Outcome::Failed(None),
            Err(e) => {
                self.log(Level::Error, &format!("Download failed: {rel}: {e}"));
                let key = key_for(&self.config.prefix, rel);
                let err = FileError::download(key, Some(rel.to_owned()), &e);
                report.errors.push(err.clone());
                Outcome::Failed(Some(err))
            }
        }
    }
}

/// Why `rel` was not downloaded when the pull halted: the failure every
/// request would repeat, as the pull reported it once.
fn halted_by(report: &Report, rel: &str) -> FileError {
    let cause = report
        .errors
        .iter()
        .rev()
        .find(|e| e.s3.as_ref().is_some_and(|s3| s3.is_global()));
    match cause {
        Some(e) => FileError {
            path: rel.to_owned(),
            ..e.clone()
        },
        None => FileError::new(
            Action::Download,
            rel,
            &Error::Cancelled("not downloaded: the pull stopped".into()),
        ),
    }
}

/// A plan's deletions that must go before its downloads (a file where a
/// download needs a directory, or the reverse), and the rest.
fn split_deletes(plan: &PullPlan) -> (Vec<LocalDelete>, Vec<LocalDelete>) {
    plan.deletes.iter().cloned().partition(|del| {
        plan.downloads
            .iter()
            .any(|d| shapes_clash(&del.rel, &d.rel))
    })
}

async fn recv(inbox: &mut Option<mpsc::UnboundedReceiver<Want>>) -> Option<Want> {
    match inbox {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_page<S>(pages: &mut Option<Pin<Box<S>>>) -> Option<S::Item>
where
    S: futures::Stream,
{
    match pages {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
