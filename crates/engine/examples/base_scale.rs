//! How the sync base scales (issue 13): builds a base of `--files` entries
//! (default 1,000,000; paths like a source tree, MD5 ETags), then times a
//! whole rewrite (`compact`, which a save does once superseded records
//! outnumber live ones), a load, and the save of an operation that changed 100 paths
//! (appended, not rewritten), and prints one line of JSON with those, the
//! file's bytes per entry and the peak RSS.
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

fn main() {
    let mut args = std::env::args().skip(1);
    let mut files: usize = 1_000_000;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--files", Some(n)) => files = n.parse().expect("--files N"),
            _ => {
                eprintln!("usage: base_scale [--files N]");
                std::process::exit(2);
            }
        }
    }
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = || Arc::new(Dir::open_root(tmp.path()).expect("the temp dir"));
    let mut base = SyncBase::load(dir(), "bucket", "agents/a1/", &Identity::default());
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
    let started = Instant::now();
    let mut loaded = SyncBase::load(dir(), "bucket", "agents/a1/", &Identity::default());
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(loaded.len(), files);
    let started = Instant::now();
    for i in (0..files).step_by(files.div_ceil(100)) {
        loaded.record(rel(i), entry(i + 1)).expect("record");
    }
    loaded.save().expect("save");
    let changed_ms = started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{{\"files\":{files},\"compactMs\":{compact_ms:.0},\"loadMs\":{load_ms:.0},\"save100ChangedMs\":{changed_ms:.1},\"bytesPerEntry\":{:.1},\"maxRssMiB\":{}}}",
        bytes as f64 / files as f64,
        peak_rss_kb() / 1024
    );
}
