//! Property tests: the key → path mapping never escapes and never panics,
//! the ignore matcher never panics and stays fast, and the planner's
//! invariants hold for any listing and local state.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use s3ws_engine::ignore_rules::IgnoreRules;
use s3ws_engine::keys::{classify_key, KeyKind};
use s3ws_engine::plan::{hash_candidates, plan_pull, remote_files, Folding};
use s3ws_engine::store::RemoteObject;
use s3ws_engine::workspace::{FileStat, Scan};

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
    fn a_pull_plan_downloads_or_keeps_every_safe_key_and_deletes_only_local_only_files(
        remote in prop::collection::btree_map("[a-c]{1,2}(/[a-c]{1,2}){0,2}", (0u64..4, any::<bool>()), 0..12),
        local in prop::collection::btree_map("[a-c]{1,2}(/[a-c]{1,2}){0,2}", 0u64..4, 0..12),
        hostile in prop::collection::vec(hostile_key(), 0..3),
    ) {
        let md5 = |n: u64| format!("{n:032x}");
        let rules = IgnoreRules::new(&[]).unwrap();
        let mut listing: Vec<RemoteObject> = remote
            .iter()
            .map(|(rel, (size, same))| RemoteObject {
                key: format!("p/{rel}"),
                size: Some(*size),
                etag: Some(md5(if *same { *size } else { 99 })),
                last_modified: None,
            })
            .collect();
        listing.extend(hostile.iter().map(|k| RemoteObject { key: k.clone(), size: Some(1), etag: None, last_modified: None }));
        let mut scan = Scan::default();
        for (rel, size) in &local {
            scan.files.insert(rel.clone(), FileStat { size: *size, ..FileStat::default() });
        }
        let files = remote_files("p/", &listing, &rules, Folding::default());
        let safe: BTreeMap<String, RemoteObject> = files.files.clone();
        let had_errors = !files.errors.is_empty();
        let md5s: HashMap<String, String> = hash_candidates(&files, &scan)
            .into_iter()
            .map(|rel| {
                let size = scan.files[&rel].size;
                (rel, md5(size))
            })
            .collect();
        let plan = plan_pull(files, &scan, &md5s, &HashMap::new());
        let mut covered: Vec<&str> = plan.downloads.iter().map(|d| d.rel.as_str()).collect();
        covered.extend(plan.unchanged.iter().map(|(r, _)| r.as_str()));
        covered.sort();
        prop_assert_eq!(covered, safe.keys().map(String::as_str).collect::<Vec<_>>());
        for rel in &plan.deletes {
            prop_assert!(!safe.contains_key(rel) && scan.files.contains_key(rel));
        }
        if had_errors {
            prop_assert!(plan.deletes.is_empty());
        } else {
            prop_assert_eq!(plan.deletes.len(), scan.files.keys().filter(|r| !safe.contains_key(*r)).count());
        }
        // Unchanged means: same size and same MD5 as the object.
        for (rel, entry) in &plan.unchanged {
            prop_assert_eq!(Some(entry.stat.size), safe[rel].size);
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
