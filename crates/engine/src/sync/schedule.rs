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
use crate::keys::{covers, key_for, parent_dirs, Root, RootSet};
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
    /// Paths another instance changed (a live workspace's pull): nobody
    /// waits on them but the pull itself.
    Changed,
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

/// A group of roots listed together: each root's objects (`None`: it
/// cannot be planned on its own).
type Listed = Vec<(Root, Result<Option<Vec<RemoteObject>>>)>;
/// Listing requests a group of parts sends at once.
const PART_REQUESTS: usize = 16;
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
    listing_parts: RootSet,
    planned_parts: RootSet,
    /// Parts that could not be planned on their own: the full plan's.
    left_to_whole: RootSet,
    /// The priority subtree is not there yet: downloads of other paths
    /// wait (those running go on), as they always did.
    holding: bool,
    /// An `ensure` alone: the full listing, if one is needed, decides only
    /// the paths left to it, and nothing is downloaded early.
    only: bool,
    /// A pull of the paths another instance's push announced (a live
    /// workspace): the deletions among them passed that push's own
    /// mass-deletion guard and are not weighed again, or followers of a
    /// small workspace would refuse what its writer meant.
    announced: bool,
    /// Downloads that failed, for an `ensure` of their paths made later.
    failures: HashMap<String, FileError>,
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
        let halt = Halt::new(self.config.stall_timeout);
        halt.follow(&progress);
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
            halt,
            urgent: VecDeque::new(),
            queue: VecDeque::new(),
            running: HashMap::new(),
            rest: Scope::all(),
            listing_parts: RootSet::default(),
            planned_parts: RootSet::default(),
            left_to_whole: RootSet::default(),
            holding: false,
            only: matches!(mode, Mode::Only(_)),
            announced: matches!(
                mode,
                Mode::Only(Want {
                    reply: Reply::Changed,
                    ..
                })
            ),
            failures: HashMap::new(),
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
                    run.holding = true;
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
            for group in self.take_unlisted() {
                parts.push(self.list_part(group));
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
            // First: answering the priority waiter releases held downloads.
            self.answer_waiters().await;
            while self.running.len() < limit {
                let next = match self.urgent.pop_front() {
                    Some(d) => Some(d),
                    None if !self.holding => self.queue.pop_front(),
                    None => None,
                };
                let Some(d) = next else {
                    break;
                };
                let rel = d.rel.clone();
                let handle = tasks.spawn(self.ws.transfers.track_future(self.start(d)));
                self.running.insert(handle.id(), rel);
            }
            let settled = (!self.whole || self.whole_planned) && self.listing_parts.is_empty();
            let idle = self.urgent.is_empty() && self.queue.is_empty() && self.running.is_empty();
            if settled && idle {
                break;
            }
            // Only a request could still arrive: waiting on it would park the
            // pull for ever on work nothing is doing.
            let busy =
                !parts.is_empty() || pages.is_some() || scanning.is_some() || !tasks.is_empty();
            if !busy {
                return Err(self.stalled());
            }
            tokio::select! {
                Some(want) = recv(&mut inbox) => self.want(want),
                Some(found) = parts.next(), if !parts.is_empty() => {
                    self.part_listed(found).await;
                }
                page = next_page(&mut pages), if pages.is_some() => match page {
                    Some(page) => {
                        let page = page?;
                        self.listed_page(&mut early, &page);
                        listing.extend(page);
                        if let Some(local) = scanned.as_ref().filter(|_| !self.only) {
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
                    if !listed && !self.only {
                        self.decide_early(&mut early, &local);
                    }
                    scanned = Some(local);
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    self.finished(joined);
                }
                else => return Err(self.stalled()),
            }
        }
        self.progress.settle();
        self.delete_deferred(whole).await;
        Ok(())
    }

    /// The error for a pull with work left and nothing running that could
    /// do it (a scheduling bug): its state, so a report can say which.
    fn stalled(&self) -> Error {
        Error::Task(format!(
            "the pull stalled with nothing left to wait for ({} urgent, {} queued, {} waiters, holding: {}, whole: {}/{}, parts listing: {})",
            self.urgent.len(),
            self.queue.len(),
            self.waiters.len(),
            self.holding,
            self.whole,
            self.whole_planned,
            !self.listing_parts.is_empty(),
        ))
    }

    /// The roots each waiter needs that no part listing or plan covers
    /// yet, a group per waiter: each group is listed on its own where that
    /// can decide it, else the full listing will.
    fn take_unlisted(&mut self) -> Vec<Vec<Root>> {
        if self.whole_planned {
            return Vec::new();
        }
        let mut groups = Vec::new();
        let mut taken = RootSet::default();
        for w in &self.waiters {
            let group: Vec<Root> = w
                .roots
                .iter()
                .filter(|r| {
                    let covered = self.listing_parts.covers(r)
                        || self.planned_parts.covers(r)
                        || self.left_to_whole.covers(r)
                        || taken.covers(r)
                        // A file downloaded early is decided.
                        || (!r.ends_with('/') && !self.rest.contains(r));
                    if !covered {
                        taken.insert(r);
                    }
                    !covered
                })
                .cloned()
                .collect();
            if !group.is_empty() {
                groups.push(group);
            }
        }
        if self.folding.case || self.folding.unicode {
            // A key outside a part could name one of its files.
            for root in groups.into_iter().flatten() {
                self.leave_to_whole(root, "this filesystem folds names");
            }
            return Vec::new();
        }
        for r in groups.iter().flatten() {
            self.listing_parts.insert(r);
        }
        groups
    }

    /// Lists the roots of a group on their own, a few requests at a time:
    /// each root's objects, or `None` when a directory it needs is an
    /// object (or a file root is also a directory) on S3. Listings only, no
    /// HEAD: a policy that allows listing the prefix is enough.
    fn list_part(&self, roots: Vec<Root>) -> Boxed<Listed> {
        use futures::stream::{self, StreamExt as _};
        let store = self.store.clone();
        let prefix = self.ws.config.prefix.clone();
        Box::pin(async move {
            // Each directory any root needs, once: is it a key?
            let dirs: BTreeSet<String> = roots
                .iter()
                .flat_map(|r| parent_dirs(r).map(str::to_owned))
                .collect();
            let objects_at = {
                let (store, prefix) = (store.clone(), prefix.clone());
                move |dir: String| {
                    let (store, prefix) = (store.clone(), prefix.clone());
                    async move {
                        let key = format!("{prefix}{dir}");
                        // A key sorts before every longer key it begins.
                        let page = store.list_page(&key, None).await;
                        (
                            dir,
                            page.map(|p| p.objects.first().is_some_and(|o| o.key == key)),
                        )
                    }
                }
            };
            let dir_keys: HashMap<String, Result<bool>> = stream::iter(dirs)
                .map(objects_at)
                .buffer_unordered(PART_REQUESTS)
                .collect()
                .await;
            let listed: Vec<(Root, Result<Option<Vec<RemoteObject>>>)> = stream::iter(roots)
                .map(|root| {
                    let (store, prefix) = (store.clone(), prefix.clone());
                    async move {
                        let key = format!("{prefix}{root}");
                        let found = if root.ends_with('/') {
                            list_all(&*store, &key).await.map(Some)
                        } else {
                            // The key itself (first if there), and whether
                            // keys below it make it a directory too.
                            let below = format!("{key}/");
                            let (at, under) = tokio::join!(
                                store.list_page(&key, None),
                                store.list_page(&below, None)
                            );
                            match (at, under) {
                                (Ok(_), Ok(under)) if !under.objects.is_empty() => Ok(None),
                                (Ok(at), Ok(_)) => Ok(Some(
                                    at.objects.into_iter().filter(|o| o.key == key).collect(),
                                )),
                                (Err(e), _) | (_, Err(e)) => Err(e),
                            }
                        };
                        (root, found)
                    }
                })
                .buffer_unordered(PART_REQUESTS)
                .collect()
                .await;
            let listed = listed
                .into_iter()
                .map(|(root, found)| {
                    let clash = parent_dirs(&root).find_map(|d| match &dir_keys[d] {
                        Ok(true) => Some(Ok(None)),
                        Ok(false) => None,
                        Err(e) => Some(Err(Error::Task(format!("listing {d} failed: {e}")))),
                    });
                    (root, clash.unwrap_or(found))
                })
                .collect();
            listed
        })
    }

    /// A group's listings came: plans the roots that can be planned on
    /// their own (against a scan of them), leaves the others to the full
    /// plan.
    async fn part_listed(&mut self, found: Listed) {
        let mut roots = Vec::new();
        let mut objects = Vec::new();
        for (root, listed) in found {
            self.listing_parts.remove(&root);
            match listed {
                Ok(Some(listed)) => {
                    objects.extend(listed);
                    roots.push(root);
                }
                Ok(None) => self.leave_to_whole(root, "a directory it needs is an object"),
                Err(e) => self.leave_to_whole(root, &format!("listing it failed: {e}")),
            }
        }
        if roots.is_empty() {
            return;
        }
        let (dir, rules, wanted) = (self.root.clone(), self.rules.clone(), roots.clone());
        let (local, refused) = match blocking(move || scan_part(&dir, &rules, &wanted)).await {
            Ok(found) => found,
            Err(e) => {
                for root in roots {
                    self.leave_to_whole(root, &format!("scanning it failed: {e}"));
                }
                return;
            }
        };
        for root in refused {
            roots.retain(|r| *r != root);
            self.leave_to_whole(root, "a directory it needs is a file here");
        }
        if roots.is_empty() {
            return;
        }
        let ws = self.ws;
        let prefix = &ws.config.prefix;
        objects.retain(|o| roots.iter().any(|r| covers(r, &o.key[prefix.len()..])));
        let remote = remote_files(prefix, &objects, &self.rules, self.folding);
        let listed: Vec<String> = remote.files.keys().cloned().collect();
        let scope = self.rest.within(roots.clone());
        let mut plan = self.plan(remote, &local, &scope).await;
        if !self.only && (!plan.deletes.is_empty() || plan.deleted_here > 0) {
            // Deletions, here or kept for the push, are weighed across the
            // whole workspace (the mass-deletion guard, the restoring of an
            // emptied workspace): the full plan decides these paths.
            for root in roots {
                self.leave_to_whole(root, "it has local deletions to weigh with the rest");
            }
            return;
        }
        ws.log(
            Level::Debug,
            &format!(
                "Planning {} ahead of the rest of the pull",
                roots.join(", ")
            ),
        );
        // An `ensure` alone: its deletions are weighed by themselves, as a
        // pull that found only these would.
        if !self.announced {
            let parts = plan.deletes.len();
            guard_local_deletes(&mut plan, parts, &self.base, self.pull_rules);
        }
        self.known.extend(listed);
        for w in &mut self.waiters {
            let named = |path: &str| path.is_empty() || w.roots.iter().any(|r| covers(r, path));
            if roots
                .iter()
                .any(|r| w.roots.iter().any(|x| covers(x, r) || covers(r, x)))
            {
                w.errors
                    .extend(plan.errors.iter().filter(|e| named(&e.path)).cloned());
            }
        }
        for root in &roots {
            self.rest.exclude(root);
            self.planned_parts.insert(root);
        }
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
        self.left_to_whole.insert(&root);
        self.whole = true;
    }

    /// Plans what no part decided, once the full listing and scan are in.
    async fn plan_whole(&mut self, objects: Vec<RemoteObject>, local: Scan) {
        let ws = self.ws;
        let remote = remote_files(&ws.config.prefix, &objects, &self.rules, self.folding);
        for (key, why) in &remote.skipped {
            ws.log(Level::Warn, &format!("Skipping object {key}: {why}"));
        }
        // An `ensure` alone decides only the paths it could not plan alone.
        let scope = match self.only {
            true => self.rest.within(self.left_to_whole.to_vec()),
            false => self.rest.clone(),
        };
        let mut plan = self.plan(remote, &local, &scope).await;
        plan.deletes.append(&mut self.deferred);
        guard_local_deletes(&mut plan, local.files.len(), &self.base, self.pull_rules);
        let (now, later) = split_deletes(&plan);
        self.deferred = later;
        self.whole_planned = true;
        if !self.only {
            self.leftover_temps = local.temp_files;
        }
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
        // What already failed is why the path is not current.
        let errors = self
            .failures
            .iter()
            .filter(|(rel, _)| covered(rel))
            .map(|(_, e)| e.clone())
            .collect();
        if matches!(want.reply, Reply::Ensure(_)) {
            for root in &want.roots {
                let (path, dir) = root
                    .strip_suffix('/')
                    .map_or((root.as_str(), false), |p| (p, true));
                if self.rules.is_ignored(path, dir) {
                    self.ws.log(
                        Level::Warn,
                        &format!(
                            "ensure: {root} is hidden by the ignore rules, so it is never pulled \
                             (reported as missing)"
                        ),
                    );
                }
            }
        }
        self.waiters.push(Waiter {
            roots: want.roots,
            reply: want.reply,
            outstanding,
            downloaded: 0,
            errors,
        });
    }

    /// Answers the waiters whose paths are all decided and downloaded,
    /// after the local deletions among their paths (already weighed by the
    /// guard: only weighed ones are kept for later).
    async fn answer_waiters(&mut self) {
        // A file downloaded early is decided too (the rest leaves it out).
        let decided = |r: &str| {
            self.whole_planned
                || self.planned_parts.covers(r)
                || (!r.ends_with('/') && !self.rest.contains(r))
        };
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.outstanding.is_empty() && w.roots.iter().all(|r| decided(r)));
        self.waiters = waiting;
        if ready.is_empty() {
            return;
        }
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|d| {
                ready
                    .iter()
                    .any(|w| w.roots.iter().any(|r| covers(r, &d.rel)))
            });
        self.deferred = later;
        if !now.is_empty() {
            let ws = self.ws;
            self.report.deleted += ws
                .delete_local(&self.root, now, &mut self.base, &mut self.report)
                .await;
        }
        for w in ready {
            match w.reply {
                Reply::Priority => {
                    self.holding = false;
                    self.ws.observer.priority_settled();
                }
                Reply::Changed => {}
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
                // An upload from here went unanswered: the object may be
                // that write (see `plan_pull`), not a new one to fetch.
                && self.base.intent(&rel).is_none()
                && self.rest.contains(&rel)
                && !self.listing_parts.covers(&rel);
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
                    keep_if_new: false,
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
            Outcome::Failed(None) => Some(halted_by(&self.halt, &self.ws.config.prefix, &rel)),
        };
        if let Some(e) = &failure {
            self.failures.insert(rel.clone(), e.clone());
        }
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
        if !self.whole_planned && !self.announced && !deletes.is_empty() {
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
            let Some(e) = self.untried(halt) else {
                return Outcome::Failed(None);
            };
            let key = key_for(&self.config.prefix, rel);
            let err = FileError::download(key, Some(rel.to_owned()), &e);
            report.errors.push(err.clone());
            return Outcome::Failed(Some(err));
        };
        match result {
            Ok(done) => {
                if let Some((copy, c)) = &done.conflict_copy {
                    let message = if beside {
                        format!(
                            "Conflict: {rel} changed both here (after the pull was called) \
                             and on S3; the local version stays, S3's was saved as {copy}"
                        )
                    } else if done.unseen {
                        format!(
                            "Conflict: {rel} on S3 was written as a new file by a writer that \
                             never saw the version synced here (two agents created it at the \
                             same moment, or it was deleted and made again); S3's version was \
                             downloaded and the local one kept as {copy}"
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
                report.written.push(rel.to_owned());
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
fn halted_by(halt: &Halt, prefix: &str, rel: &str) -> FileError {
    let err = halt
        .cause()
        .unwrap_or_else(|| Error::Cancelled("not downloaded: the pull stopped".into()));
    FileError::download(key_for(prefix, rel), Some(rel.to_owned()), &err)
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
