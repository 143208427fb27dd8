//! Property tests: the key → path mapping never escapes and never panics,
//! the ignore matcher never panics and stays fast, and the planner's
//! invariants hold for any listing and local state. (`agents.rs` runs two
//! agents through random steps and base damage.)

use std::collections::HashMap;
use std::path::{Component, Path};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use s3ws_engine::base::{BaseEntries, BaseEntry};
use s3ws_engine::ignore_rules::IgnoreRules;
use s3ws_engine::keys::{classify_key, KeyKind};
use s3ws_engine::model::{FileStat, Folding, Hashed, RemoteObject, Scan};
use s3ws_engine::plan::{plan_pull, remote_files, ConflictPolicy, LocalView, PullRules};

/// Key material biased towards what breaks paths.
fn hostile_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        Just("a\\..".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\n".to_owned()),
        Just("x".repeat(256)),
        Just(".s3ws".to_owned()),
        "[a-zA-Z0-9 ._~é日-]{1,12}",
        any::<String>(),
    ]
}

fn hostile_key() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("p/".to_owned()),
            Just("p".to_owned()),
            Just("/".to_owned()),
            Just("q/".to_owned()),
            Just(String::new())
        ],
        prop::collection::vec(hostile_segment(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(head, segs, slash)| {
            let mut k = head + &segs.join("/");
            if slash {
                k.push('/');
            }
            k
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_mapped_key_stays_inside_the_workspace(key in hostile_key()) {
        if let Ok(KeyKind::File(rel)) = classify_key("p/", &key) {
            let root = Path::new("/work/ws");
            let joined = root.join(&rel);
            prop_assert!(joined.starts_with(root));
            prop_assert!(Path::new(&rel).components().all(|c| matches!(c, Component::Normal(_))), "{rel:?}");
            prop_assert!(rel.split('/').all(|s| !s.is_empty() && s != "." && s != ".." && s.len() <= 255));
            prop_assert!(!rel.contains('\\') && !rel.chars().any(char::is_control));
            prop_assert_eq!(format!("p/{rel}"), key);
        }
    }

    #[test]
    fn the_ignore_matcher_never_panics(
        patterns in prop::collection::vec(any::<String>(), 0..8),
        paths in prop::collection::vec(any::<String>(), 0..16),
    ) {
        if let Ok(rules) = IgnoreRules::new(&patterns) {
            for p in &paths {
                let _ = rules.is_ignored(p, false);
                let _ = rules.is_ignored(p, true);
            }
        }
    }

    #[test]
    fn a_pull_never_deletes_or_replaces_local_work(
        paths in prop::collection::btree_map(
            "[a-c]{1,2}(/[a-c]{1,2}){0,2}",
            // (base content, local (content, written after the call), remote content)
            (prop::option::of(0u8..3), prop::option::of((0u8..3, any::<bool>())), prop::option::of(0u8..3)),
            0..12,
        ),
        hostile in prop::collection::vec(hostile_key(), 0..3),
        has_base in any::<bool>(),
        overwrite in any::<bool>(),
    ) {
        const NOW: i128 = 1_000_000_000_000_000_000;
        let hash = |n: u8| format!("{n:032x}");
        let mut base = BaseEntries::new(0);
        let mut scan = Scan::default();
        let mut hashes = HashMap::new();
        let mut listing = Vec::new();
        let synced = FileStat { size: 1, mtime_ns: 1, ctime_ns: 1, ino: 1 };
        for (rel, (b, l, r)) in &paths {
            if let (true, Some(b)) = (has_base, b) {
                let entry = BaseEntry { etag: Some(hash(*b)), hash: hash(*b), stat: synced, recorded_ns: NOW, born: 0 };
                base.set(rel.clone(), entry);
            }
            if let Some((content, after)) = l {
                let unchanged = has_base && *b == Some(*content) && !after;
                let mtime = if *after { NOW + 1 } else if unchanged { 1 } else { 2 };
                scan.files.insert(rel.clone(), FileStat { mtime_ns: mtime, ctime_ns: mtime, ..synced });
                hashes.insert(rel.clone(), Hashed { hash: hash(*content), at_ns: NOW, parts: Default::default() });
            }
            if let Some(r) = r {
                listing.push(RemoteObject { key: format!("p/{rel}"), size: Some(1), etag: Some(hash(*r)), last_modified: None });
            }
        }
        if has_base {
            base.mark_existing();
        }
        listing.extend(hostile.iter().map(|k| RemoteObject { key: k.clone(), size: Some(1), etag: None, last_modified: None }));
        let rules = IgnoreRules::new(&[]).unwrap();
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        let blocked = remote.blocked.clone();
        // A key that lost a file/directory clash counts as gone here.
        let shadowed: std::collections::BTreeSet<String> = remote.shadowed.keys().cloned().collect();
        let view = LocalView { scan: &scan, hashes: &hashes, base: &base, started_ns: NOW };
        let policy = if overwrite { ConflictPolicy::Overwrite } else { ConflictPolicy::KeepBoth };
        let plan = plan_pull(remote, &view, &HashMap::new(), PullRules { policy, max_delete_percent: 100, restore_deleted: false });
        let local_work = |rel: &str| {
            let (b, l, _) = &paths[rel];
            let (content, after) = l.expect("a local file");
            (after, !has_base || *b != Some(content))
        };
        for rel in plan.deletes.iter().map(|d| &d.rel) {
            let (_, _, r) = &paths[rel.as_str()];
            prop_assert!(r.is_none() || shadowed.contains(rel), "{rel} deleted though on S3");
            let (after, modified) = local_work(rel);
            prop_assert!(!after, "{rel} written after the call was deleted");
            prop_assert!(!modified || !has_base, "{rel}: a local change was deleted");
        }
        for d in &plan.downloads {
            prop_assert!(!blocked.contains(&d.rel));
            let Some((_, Some(_), _)) = paths.get(&d.rel) else { continue };
            let (after, modified) = local_work(&d.rel);
            if d.beside {
                // S3's version goes beside the local file, which stays.
                prop_assert!(d.replaces.is_none() && !d.keep_local);
                continue;
            }
            prop_assert!(!after, "{} written after the call was replaced", d.rel);
            if modified && has_base && !overwrite {
                prop_assert!(d.keep_local, "{}: a local change replaced without a copy", d.rel);
            }
            prop_assert!(!plan.deletes.iter().any(|del| del.rel == d.rel));
        }
    }
}

#[test]
fn the_ignore_matcher_stays_fast_on_pathological_patterns() {
    let patterns: Vec<String> = vec![
        "**/**/**/**/**/**/**/**/a".into(),
        "*a*a*a*a*a*a*a*a*a*a*b".into(),
        "[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*!".into(),
        format!("{}b", "a*".repeat(40)),
    ];
    let rules = IgnoreRules::new(&patterns).unwrap();
    let long = format!(
        "{}/{}",
        vec!["aaaaaaaaaaaaaaaaaaaa"; 40].join("/"),
        "a".repeat(200)
    );
    let started = Instant::now();
    for _ in 0..200 {
        assert!(!rules.is_ignored(&long, false) || rules.is_ignored(&long, false));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}
