//! Two agents on one prefix (an in-memory store), each with its own
//! workspace directory, doing random edits, deletions, file↔directory
//! changes, pulls and pushes, while their sync bases are damaged at random
//! (a flipped byte, a cut, an emptied file, another directory's base put in
//! place). After every step: no agent's unpushed work is lost (every
//! content an agent wrote is, until S3 has held it, still in that agent's
//! workspace, at its name or in a conflict copy), and no push removes from
//! S3 a content its agent never had (a blind overwrite or deletion of
//! another agent's work).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use s3ws_engine::store::memory::MemoryStore;
use s3ws_engine::{Config, Level, Observer, Progress, Run, Workspace};

struct Quiet;
impl Observer for Quiet {
    fn progress(&self, _: Progress) {}
    fn log(&self, _: Level, _: &str) {}
}

/// Paths the agents write: `d` is a file or a directory at times.
const PATHS: &[&str] = &["a", "b", "d", "d/x", "d/y"];

#[derive(Debug, Clone)]
enum Step {
    Write(usize, usize),
    Delete(usize, usize),
    Pull(usize),
    /// `ensure` of one path, or of `d/`.
    Ensure(usize, usize),
    Push(usize),
    Damage(usize, Damage),
    /// Time passes: what was written before counts as written before the
    /// next call (files stamped just before a call count as after it).
    Settle,
}

#[derive(Debug, Clone)]
enum Damage {
    /// One byte flipped at this fraction (per mille) of the file.
    Flip(u16),
    /// Cut at this fraction (per mille).
    Cut(u16),
    Empty,
    /// The other agent's base put in its place (a base of another directory).
    Foreign,
}

fn step() -> impl Strategy<Value = Step> {
    let agent = 0..2usize;
    let path = 0..PATHS.len();
    prop_oneof![
        4 => (agent.clone(), path.clone()).prop_map(|(a, p)| Step::Write(a, p)),
        1 => (agent.clone(), path).prop_map(|(a, p)| Step::Delete(a, p)),
        3 => agent.clone().prop_map(Step::Pull),
        1 => (agent.clone(), 0..=PATHS.len()).prop_map(|(a, p)| Step::Ensure(a, p)),
        3 => agent.clone().prop_map(Step::Push),
        2 => Just(Step::Settle),
        1 => (agent, prop_oneof![
            (0..1000u16).prop_map(Damage::Flip),
            (0..1000u16).prop_map(Damage::Cut),
            Just(Damage::Empty),
            Just(Damage::Foreign),
        ]).prop_map(|(a, d)| Step::Damage(a, d)),
    ]
}

/// Every regular file's content under `dir`, but the engine's own.
fn contents(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_name() == ".s3ws" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                out.insert(text);
            }
        }
    }
    out
}

fn base_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join(".s3ws"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "base"))
}

/// Writes `content` at `rel`, replacing a file by a directory or a
/// directory by a file on the way, as an agent regenerating output would.
/// Returns the contents the agent removed doing so.
fn write(dir: &Path, rel: &str, content: &str) -> BTreeSet<String> {
    let full = dir.join(rel);
    let mut removed = BTreeSet::new();
    if full.is_dir() {
        removed = contents(&full);
        std::fs::remove_dir_all(&full).unwrap();
    }
    removed.extend(std::fs::read_to_string(&full).ok());
    let parent = full.parent().unwrap();
    if parent.is_file() {
        removed.extend(std::fs::read_to_string(parent).ok());
        std::fs::remove_file(parent).unwrap();
    }
    std::fs::create_dir_all(parent).unwrap();
    std::fs::write(&full, content).unwrap();
    removed
}

fn damage(dirs: &[PathBuf], agent: usize, how: &Damage) {
    let Some(file) = base_file(&dirs[agent]) else {
        return;
    };
    let mut bytes = std::fs::read(&file).unwrap();
    let at = |per_mille: u16| bytes.len() * usize::from(per_mille) / 1000;
    match how {
        Damage::Flip(p) if !bytes.is_empty() => {
            let i = at(*p).min(bytes.len() - 1);
            bytes[i] ^= 0x24;
        }
        Damage::Flip(_) => {}
        Damage::Cut(p) => bytes.truncate(at(*p)),
        Damage::Empty => bytes.clear(),
        Damage::Foreign => match base_file(&dirs[1 - agent]) {
            Some(other) => bytes = std::fs::read(other).unwrap(),
            None => return,
        },
    }
    std::fs::write(&file, bytes).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_unpushed_work_is_lost(steps in prop::collection::vec(step(), 1..32)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = Arc::new(MemoryStore::new(3));
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..2).map(|i| tmp.path().join(format!("agent{i}"))).collect();
        let agents: Vec<Workspace> = dirs
            .iter()
            .map(|d| {
                std::fs::create_dir_all(d).unwrap();
                let mut config = Config::new("b", "p/", d);
                config.max_delete_percent = 100;
                // One agent plans `d/` ahead of the rest (listed on its own,
                // or with the whole listing when `d` is a file somewhere).
                if d.ends_with("agent1") {
                    config.priority_prefix = Some("d/".into());
                }
                Workspace::with_store(config, store.clone(), Arc::new(Quiet)).unwrap()
            })
            .collect();
        // Contents written by each agent that S3 has not held yet.
        let mut unpushed: Vec<BTreeSet<String>> = vec![BTreeSet::new(), BTreeSet::new()];
        // Contents each agent has had in its workspace.
        let mut seen: Vec<BTreeSet<String>> = vec![BTreeSet::new(), BTreeSet::new()];
        let s3_contents = || -> BTreeSet<String> {
            store
                .keys()
                .iter()
                .filter_map(|k| store.body(k))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect()
        };
        let mut counter = 0;
        for step in &steps {
            match step {
                Step::Write(a, p) => {
                    counter += 1;
                    let content = format!("agent {a} wrote {counter}");
                    for gone in write(&dirs[*a], PATHS[*p], &content) {
                        unpushed[*a].remove(&gone);
                    }
                    unpushed[*a].insert(content);
                }
                Step::Delete(a, p) => {
                    let full = dirs[*a].join(PATHS[*p]);
                    if full.is_file() {
                        // Only content S3 has held may be deleted by the agent
                        // itself without counting as lost.
                        let gone = std::fs::read_to_string(&full).unwrap();
                        unpushed[*a].remove(&gone);
                        std::fs::remove_file(full).unwrap();
                    }
                }
                Step::Pull(a) => {
                    let _ = rt.block_on(agents[*a].pull());
                }
                Step::Ensure(a, p) => {
                    let path = PATHS.get(*p).map_or("d/", |p| p).to_owned();
                    let _ = rt.block_on(agents[*a].ensure(&[path], &Run::default()));
                }
                Step::Push(a) => {
                    let before = s3_contents();
                    let _ = rt.block_on(agents[*a].push());
                    let after = s3_contents();
                    for gone in before.difference(&after) {
                        prop_assert!(seen[*a].contains(gone), "agent {a}'s push removed {gone:?}, which it never had");
                    }
                }
                Step::Damage(a, how) => damage(&dirs, *a, how),
                Step::Settle => std::thread::sleep(std::time::Duration::from_millis(30)),
            }
            let on_s3 = s3_contents();
            for (a, work) in unpushed.iter_mut().enumerate() {
                work.retain(|c| !on_s3.contains(c));
                let here = contents(&dirs[a]);
                seen[a].extend(here.iter().cloned());
                for c in work.iter() {
                    prop_assert!(here.contains(c), "agent {a}'s unpushed {c:?} was lost after {step:?}");
                }
            }
        }
    }
}
