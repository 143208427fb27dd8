//! Random interleavings of directory renames, symlink swaps and planted
//! links with a running pull (the in-memory store yields between chunks, a
//! thread mutates the workspace meanwhile): nothing outside the workspace
//! ever changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use s3ws_engine::store::memory::MemoryStore;
use s3ws_engine::{Config, Level, Observer, Progress, Workspace};

struct Quiet;
impl Observer for Quiet {
    fn progress(&self, _: Progress) {}
    fn log(&self, _: Level, _: &str) {}
}

#[derive(Debug, Clone)]
enum Op {
    /// `d<k>` moved away and a link to the outside put in its place.
    SwapDirForLink(usize),
    /// The moved directory put back (the link removed).
    Restore(usize),
    /// A file of `d<k>` replaced by a link to a file outside.
    LinkFile(usize, usize),
    /// `d<k>` removed with everything in it.
    RemoveDir(usize),
    Pause(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(Op::SwapDirForLink),
        (0..3usize).prop_map(Op::Restore),
        (0..3usize, 0..8usize).prop_map(|(d, f)| Op::LinkFile(d, f)),
        (0..3usize).prop_map(Op::RemoveDir),
        (0..3u64).prop_map(Op::Pause),
    ]
}

/// Every entry under `dir`, links not followed: path → content or link target.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
                out.insert(p, "dir".into());
            } else if meta.file_type().is_symlink() {
                out.insert(
                    p.clone(),
                    format!("-> {:?}", std::fs::read_link(&p).unwrap()),
                );
            } else {
                out.insert(p.clone(), std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn apply(ws: &Path, outside: &Path, op: &Op) {
    let d = |k: usize| ws.join(format!("d{k}"));
    // The mutator itself must not reach outside through a link it made.
    let real_dir = |k: usize| std::fs::symlink_metadata(d(k)).is_ok_and(|m| m.is_dir());
    let moved = |k: usize| ws.join(format!("moved{k}"));
    // Every step may fail (the pull moves things too): that is the point.
    let _ = match op {
        Op::SwapDirForLink(k) => std::fs::rename(d(*k), moved(*k))
            .and_then(|()| std::os::unix::fs::symlink(outside, d(*k))),
        Op::Restore(k) => {
            std::fs::remove_file(d(*k)).and_then(|()| std::fs::rename(moved(*k), d(*k)))
        }
        Op::LinkFile(k, _) | Op::RemoveDir(k) if !real_dir(*k) => Ok(()),
        Op::LinkFile(k, f) => {
            let file = d(*k).join(format!("f{f}.txt"));
            std::fs::remove_file(&file)
                .and_then(|()| std::os::unix::fs::symlink(outside.join("precious.txt"), &file))
        }
        Op::RemoveDir(k) => std::fs::remove_dir_all(d(*k)),
        Op::Pause(ms) => {
            std::thread::sleep(Duration::from_millis(*ms));
            Ok(())
        }
    };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    #[test]
    fn nothing_outside_the_workspace_changes(ops in prop::collection::vec(op(), 1..24), changed in 0..8usize) {
        let tmp = tempfile::tempdir().unwrap();
        let (ws, outside) = (tmp.path().join("ws"), tmp.path().join("outside"));
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious.txt"), "must not change").unwrap();
        for f in 0..8 {
            std::fs::write(outside.join(format!("f{f}.txt")), "named like a synced file").unwrap();
        }
        let before = fingerprint(&outside);

        let store = Arc::new(MemoryStore::new(5));
        for d in 0..3 {
            for f in 0..8 {
                store.insert(&format!("p/d{d}/f{f}.txt"), vec![b'a'; 6000]);
            }
        }
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let ws_engine = Workspace::with_store(Config::new("b", "p/", &ws), store.clone(), Arc::new(Quiet)).unwrap();
        rt.block_on(ws_engine.pull()).unwrap();
        // S3 changes: some objects rewritten, some deleted, so the racing
        // pull both writes and deletes.
        for d in 0..3 {
            for f in 0..changed {
                store.insert(&format!("p/d{d}/f{f}.txt"), vec![b'b'; 6000]);
            }
        }
        for d in 0..3 {
            let _ = futures::executor::block_on(s3ws_engine::store::Store::delete(&*store, &format!("p/d{d}/f7.txt"), None));
        }

        let mutator = {
            let (ws, outside, ops) = (ws.clone(), outside.clone(), ops.clone());
            std::thread::spawn(move || ops.iter().for_each(|op| apply(&ws, &outside, op)))
        };
        let _ = rt.block_on(ws_engine.pull());
        mutator.join().unwrap();
        // And once more, on whatever state the race left.
        let _ = rt.block_on(ws_engine.pull());
        prop_assert_eq!(fingerprint(&outside), before);
    }
}
