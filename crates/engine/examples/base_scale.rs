//! How the sync base scales (issues 13, 28): builds a base of `--files`
//! entries (default 1,000,000; paths like a source tree, MD5 ETags), then
//! times a whole rewrite (`compact`, which a save does once superseded
//! records outnumber live ones), a load, and the save of an operation that
//! changed 100 paths (appended, not rewritten), and prints one line of JSON
//! with those, the file's bytes per entry, what the loaded entries hold in
//! memory per entry, and the peak RSS of a process that only loads the base
//! (the load runs in a child of its own, so building the base does not
//! count).
//!
//! ```text
//! cargo run --release -p s3ws-engine --example base_scale -- [--files N]
//! ```

use std::sync::Arc;
use std::time::Instant;

use s3ws_engine::base::{BaseEntry, Identity, SyncBase};
use s3ws_engine::local::Dir;
use s3ws_engine::model::FileStat;

mod common;
use common::peak_rss_kb;

const BUCKET: &str = "bucket";
const PREFIX: &str = "agents/a1/";

/// The child's part: loads the base in `dir` and prints what it took.
fn load_only(dir: &str, files: usize) {
    let dir = Arc::new(Dir::open_root(std::path::Path::new(dir)).expect("the state dir"));
    let started = Instant::now();
    let loaded = SyncBase::load(dir, BUCKET, PREFIX, &Identity::default());
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(loaded.len(), files);
    println!(
        "\"loadMs\":{load_ms:.0},\"heldBytesPerEntry\":{:.1},\"loadPeakRssMiB\":{}",
        loaded.entries().heap_bytes() as f64 / files as f64,
        peak_rss_kb() / 1024
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut files: usize = 1_000_000;
    let mut load = None;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--files", Some(n)) => files = n.parse().expect("--files N"),
            ("--load-only", Some(dir)) => load = Some(dir),
            _ => {
                eprintln!("usage: base_scale [--files N]");
                std::process::exit(2);
            }
        }
    }
    if let Some(dir) = load {
        return load_only(&dir, files);
    }
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = || Arc::new(Dir::open_root(tmp.path()).expect("the temp dir"));
    let mut base = SyncBase::load(dir(), BUCKET, PREFIX, &Identity::default());
    let now: i128 = 1_764_000_000_000_000_000;
    let rel = |i: usize| {
        format!(
            "project-{}/src/module-{}/file-{i:07}.ts",
            i / 20_000,
            (i / 100) % 200
        )
    };
    let entry = |i: usize| {
        let hash = format!(
            "{:032x}",
            (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
        );
        let mtime_ns = now - (i as i128) * 1_000_003;
        BaseEntry {
            etag: Some(hash.clone()),
            hash,
            stat: FileStat {
                size: 1_000 + (i as u64 % 50_000),
                mtime_ns,
                ctime_ns: mtime_ns,
                ino: 5_000_000 + i as u64,
            },
            recorded_ns: now + 1_000_000_000,
            born: 0,
        }
    };
    for i in 0..files {
        base.record(rel(i), entry(i)).expect("record");
    }
    let started = Instant::now();
    base.compact().expect("compact");
    let compact_ms = started.elapsed().as_secs_f64() * 1000.0;
    let bytes = std::fs::read_dir(tmp.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("base-"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum::<u64>();
    drop(base);
    let child = std::process::Command::new(std::env::current_exe().expect("this example"))
        .args(["--files", &files.to_string(), "--load-only"])
        .arg(tmp.path())
        .output()
        .expect("the load in a child");
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let loaded_fields = String::from_utf8(child.stdout).expect("UTF-8");
    let mut loaded = SyncBase::load(dir(), BUCKET, PREFIX, &Identity::default());
    let started = Instant::now();
    for i in (0..files).step_by(files.div_ceil(100)) {
        loaded.record(rel(i), entry(i + 1)).expect("record");
    }
    loaded.save().expect("save");
    let changed_ms = started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{{\"files\":{files},\"compactMs\":{compact_ms:.0},{},\"save100ChangedMs\":{changed_ms:.1},\"bytesPerEntry\":{:.1},\"maxRssMiB\":{}}}",
        loaded_fields.trim(),
        bytes as f64 / files as f64,
        peak_rss_kb() / 1024
    );
}
