//! A no-op push at scale (issue 13): writes a tree of `--files` small files
//! (default 1,000,000, 1,000 a directory) under `--dir` (default a temp dir
//! in /dev/shm when it exists), pushes it once into an in-memory store (the
//! synced state: a real sync base), then times a push by a fresh instance
//! with nothing changed: lock, base load, scan, plan, no request.
//!
//! ```text
//! cargo run --release -p s3ws-engine --example noop_push_scale -- [--files N] [--dir D] [--keep D]
//! ```
//!
//! `--keep D` writes the tree and its state into `D` and leaves them there;
//! a later run with the same `--keep D` only times the no-op push (the first
//! push is not needed: nothing changed since the base was written), which
//! is what a profiler should see.
//!
//! Prints one line of JSON: the times, the base's bytes per file and the
//! peak RSS.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use s3ws_engine::progress::Silent;
use s3ws_engine::store::memory::MemoryStore;
use s3ws_engine::{Config, Workspace};

mod common;
use common::peak_rss_kb;

const PER_DIR: usize = 1_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut files: usize = 1_000_000;
    let mut parent = if Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    let mut keep: Option<std::path::PathBuf> = None;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--files", Some(n)) => files = n.parse().expect("--files N"),
            ("--dir", Some(d)) => parent = d.into(),
            ("--keep", Some(d)) => keep = Some(d.into()),
            _ => {
                eprintln!("usage: noop_push_scale [--files N] [--dir D] [--keep D]");
                std::process::exit(2);
            }
        }
    }
    let tmp = tempfile::tempdir_in(&parent).expect("a temp dir");
    let root = keep.as_deref().unwrap_or(tmp.path()).join("ws");
    let reuse = keep.is_some() && root.join(".s3ws").is_dir();
    let started = Instant::now();
    for i in (0..files).filter(|_| !reuse) {
        let dir = root.join(format!("pkg-{:04}/src", i / PER_DIR));
        if i % PER_DIR == 0 {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        let body = format!("export const v{i} = {i};\n");
        std::fs::write(dir.join(format!("file-{i:07}.ts")), body).expect("write");
    }
    let write_ms = started.elapsed().as_millis();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let store = Arc::new(MemoryStore::new(1_000));
    let push = |what: &str| {
        let ws = Workspace::with_store(
            Config::new("bucket", "agents/a1/", &root),
            store.clone(),
            Arc::new(Silent),
        )
        .expect("a workspace");
        let started = Instant::now();
        let report = rt.block_on(ws.push()).expect(what);
        assert!(
            report.errors.is_empty(),
            "{what}: {:?}",
            &report.errors[..1]
        );
        (started.elapsed().as_millis(), report)
    };
    let first_ms = if reuse {
        0
    } else {
        let (ms, first) = push("first push");
        assert_eq!(first.transferred, files);
        ms
    };
    let (noop_ms, noop) = push("no-op push");
    assert_eq!((noop.transferred, noop.unchanged), (0, files));
    let base_bytes: u64 = std::fs::read_dir(root.join(".s3ws"))
        .expect("the state directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("base-"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    println!(
        "{{\"files\":{files},\"writeTreeMs\":{write_ms},\"firstPushMs\":{first_ms},\"noopPushMs\":{noop_ms},\"baseBytesPerFile\":{:.1},\"maxRssMiB\":{}}}",
        base_bytes as f64 / files as f64,
        peak_rss_kb() / 1024
    );
}
