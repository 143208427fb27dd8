//! What a pull or push will do, decided without I/O from a listing, a local
//! scan, file hashes and the snapshot of the last sync.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Action, Error, FileError};
use crate::ignore_rules::IgnoreRules;
use crate::keys::{classify_key, KeyKind};
use crate::store::{etag_md5, RemoteObject};
use crate::workspace::{is_reserved_path, FileStat, Scan};

/// What the engine knows of a file as of the last sync: its local state and
/// the object it matches on S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub stat: FileStat,
    /// Lowercase hex MD5 of the content.
    pub md5: String,
    /// ETag of the matching object, when known.
    pub etag: Option<String>,
}

/// Relative path → state at the last pull or push.
pub type Snapshot = HashMap<String, SnapshotEntry>;

/// How the workspace's filesystem compares names (see `workspace::probe_folding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folding {
    /// `A` and `a` are the same file (macOS, Windows by default).
    pub case: bool,
    /// Unicode NFC and NFD spellings are the same file (macOS).
    pub unicode: bool,
}

impl Folding {
    /// The name under which the filesystem stores `rel`.
    pub fn fold(&self, rel: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let s: String = if self.unicode {
            rel.nfc().collect()
        } else {
            rel.to_owned()
        };
        if self.case {
            s.to_lowercase()
        } else {
            s
        }
    }
}

/// The files of a listing, by relative path, and the keys that cannot be.
#[derive(Debug, Default)]
pub struct RemoteFiles {
    pub files: BTreeMap<String, RemoteObject>,
    pub errors: Vec<FileError>,
    pub folding: Folding,
}

/// Maps a listing of `prefix` to workspace paths: folder markers and ignored
/// paths are dropped; unsafe keys, a key that is also the directory of
/// another key, and keys the filesystem would store as one file (`folding`)
/// become errors.
pub fn remote_files(
    prefix: &str,
    listing: &[RemoteObject],
    rules: &IgnoreRules,
    folding: Folding,
) -> RemoteFiles {
    let mut out = RemoteFiles {
        folding,
        ..RemoteFiles::default()
    };
    for obj in listing {
        match classify_key(prefix, &obj.key) {
            Ok(KeyKind::FolderMarker) => {}
            Ok(KeyKind::File(rel)) if is_reserved_path(&rel) => {
                let err = Error::UnsafeKey(format!("{rel} is a name the engine reserves"));
                out.errors
                    .push(FileError::new(Action::Download, obj.key.clone(), &err));
            }
            Ok(KeyKind::File(rel)) => {
                if !rules.is_ignored(&rel, false) {
                    out.files.insert(rel, obj.clone());
                }
            }
            Err(e) => out
                .errors
                .push(FileError::new(Action::Download, obj.key.clone(), &e)),
        }
    }
    // Keys that would land on one file: none is written, all are reported.
    let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
    for rel in out.files.keys() {
        by_name
            .entry(folding.fold(rel))
            .or_default()
            .push(rel.clone());
    }
    for group in by_name.values().filter(|g| g.len() > 1) {
        for rel in group {
            if let Some(obj) = out.files.remove(rel) {
                let others: Vec<&str> = group
                    .iter()
                    .filter(|r| *r != rel)
                    .map(String::as_str)
                    .collect();
                let err = Error::UnsafeKey(format!(
                    "{rel} would be the same file as {} on this filesystem",
                    others.join(", ")
                ));
                out.errors
                    .push(FileError::new(Action::Download, obj.key, &err));
            }
        }
    }
    // A key that is also the directory of another key.
    let names: HashMap<String, String> = out
        .files
        .keys()
        .map(|rel| (folding.fold(rel), rel.clone()))
        .collect();
    let conflicts: Vec<String> = out
        .files
        .keys()
        .flat_map(|rel| {
            ancestors(rel)
                .map(|dir| folding.fold(dir))
                .collect::<Vec<_>>()
        })
        .filter_map(|dir| names.get(&dir).cloned())
        .collect();
    for dir in conflicts {
        if let Some(obj) = out.files.remove(&dir) {
            let err = Error::UnsafeKey(format!(
                "{dir} is both a file and the directory of other keys"
            ));
            out.errors
                .push(FileError::new(Action::Download, obj.key, &err));
        }
    }
    out
}

/// `a/b/c` → `a`, `a/b`.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

/// Local files that may already hold the remote content (same size): only
/// these need hashing before the pull.
pub fn hash_candidates(remote: &RemoteFiles, scan: &Scan) -> Vec<String> {
    remote
        .files
        .iter()
        .filter(|(rel, obj)| {
            scan.files
                .get(*rel)
                .is_some_and(|s| Some(s.size) == obj.size)
        })
        .map(|(rel, _)| rel.clone())
        .collect()
}

/// Of the candidates, those whose ETag is not an MD5 (multipart, encrypted):
/// their MD5 can only come from the object's metadata.
pub fn needs_stored_md5<'a>(
    remote: &'a RemoteFiles,
    candidates: &'a [String],
) -> Vec<&'a RemoteObject> {
    candidates
        .iter()
        .filter_map(|rel| remote.files.get(rel))
        .filter(|obj| obj.etag.as_deref().and_then(etag_md5).is_none())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub rel: String,
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<std::time::SystemTime>,
}

#[derive(Debug, Default)]
pub struct PullPlan {
    pub downloads: Vec<Download>,
    /// Files already identical to S3, with their snapshot entries.
    pub unchanged: Vec<(String, SnapshotEntry)>,
    /// Local files not on S3, to delete. Empty when the listing had errors:
    /// a pull that could not read all of S3 deletes nothing.
    pub deletes: Vec<String>,
    pub errors: Vec<FileError>,
}

/// Plans a pull. `md5s` holds the local hashes of (some of) the
/// `hash_candidates`; `stored_md5s` the MD5s read from object metadata, by
/// relative path, for objects whose ETag is not one.
pub fn plan_pull(
    remote: RemoteFiles,
    scan: &Scan,
    md5s: &HashMap<String, String>,
    stored_md5s: &HashMap<String, String>,
) -> PullPlan {
    let mut plan = PullPlan {
        errors: remote.errors,
        ..PullPlan::default()
    };
    for (rel, obj) in &remote.files {
        let same = match (
            scan.files.get(rel),
            md5s.get(rel),
            obj.etag
                .as_deref()
                .and_then(etag_md5)
                .or_else(|| stored_md5s.get(rel).cloned()),
        ) {
            (Some(stat), Some(local), Some(remote_md5))
                if Some(stat.size) == obj.size && *local == remote_md5 =>
            {
                Some(SnapshotEntry {
                    stat: *stat,
                    md5: remote_md5,
                    etag: obj.etag.clone(),
                })
            }
            _ => None,
        };
        match same {
            Some(entry) => plan.unchanged.push((rel.clone(), entry)),
            None => plan.downloads.push(Download {
                rel: rel.clone(),
                key: obj.key.clone(),
                size: obj.size,
                etag: obj.etag.clone(),
                last_modified: obj.last_modified,
            }),
        }
    }
    if plan.errors.is_empty() {
        // Compared as the filesystem compares names: on a case-insensitive
        // one, a local `a.txt` *is* the remote `A.txt`, not a local-only file.
        let remote_names: std::collections::HashSet<String> = remote
            .files
            .keys()
            .map(|rel| remote.folding.fold(rel))
            .collect();
        plan.deletes = scan
            .files
            .keys()
            .filter(|rel| !remote_names.contains(&remote.folding.fold(rel)))
            .cloned()
            .collect();
    }
    plan
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushPlan {
    /// New or changed files.
    pub uploads: Vec<String>,
    pub unchanged: Vec<String>,
    /// Files of the snapshot that the scan did not find (the caller confirms
    /// each is really gone before deleting it on S3).
    pub deletes: Vec<String>,
}

/// Plans a push from a scan, the hashes of all scanned files, and the snapshot.
pub fn plan_push(scan: &Scan, md5s: &HashMap<String, String>, snapshot: &Snapshot) -> PushPlan {
    let mut plan = PushPlan::default();
    for rel in scan.files.keys() {
        let Some(md5) = md5s.get(rel) else { continue };
        match snapshot.get(rel) {
            Some(entry) if entry.md5 == *md5 => plan.unchanged.push(rel.clone()),
            _ => plan.uploads.push(rel.clone()),
        }
    }
    let mut deletes: Vec<String> = snapshot
        .keys()
        .filter(|rel| !scan.files.contains_key(*rel) && !scan.is_under_unreadable(rel))
        .cloned()
        .collect();
    deletes.sort();
    plan.deletes = deletes;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, size: u64, etag: Option<&str>) -> RemoteObject {
        RemoteObject {
            key: key.into(),
            size: Some(size),
            etag: etag.map(str::to_owned),
            last_modified: None,
        }
    }

    fn scan(files: &[(&str, u64)]) -> Scan {
        let mut s = Scan::default();
        for (rel, size) in files {
            s.files.insert(
                (*rel).into(),
                FileStat {
                    size: *size,
                    mtime_ns: 1,
                    ..FileStat::default()
                },
            );
        }
        s
    }

    const MD5_A: &str = "0cc175b9c0f1b6a831c399e269772661";

    #[test]
    fn pull_skips_markers_ignored_and_unchanged_and_deletes_local_only() {
        let rules = IgnoreRules::new(&["*.secret".into()]).unwrap();
        let listing = vec![
            obj("p/", 0, None),
            obj("p/dir/", 0, None),
            obj("p/a.txt", 1, Some(MD5_A)),
            obj("p/b.txt", 2, Some("ffffffffffffffffffffffffffffffff")),
            obj("p/k.secret", 1, None),
            obj("p/node_modules/x.js", 1, None),
        ];
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        assert!(remote.errors.is_empty());
        let local = scan(&[("a.txt", 1), ("b.txt", 2), ("old.txt", 3)]);
        assert_eq!(hash_candidates(&remote, &local), vec!["a.txt", "b.txt"]);
        assert!(needs_stored_md5(&remote, &hash_candidates(&remote, &local)).is_empty());
        let md5s = HashMap::from([
            ("a.txt".to_owned(), MD5_A.to_owned()),
            ("b.txt".to_owned(), MD5_A.to_owned()),
        ]);
        let plan = plan_pull(remote, &local, &md5s, &HashMap::new());
        assert_eq!(plan.unchanged.len(), 1);
        assert_eq!(plan.unchanged[0].0, "a.txt");
        assert_eq!(plan.downloads.len(), 1);
        assert_eq!(plan.downloads[0].rel, "b.txt");
        assert_eq!(plan.deletes, vec!["old.txt"]);
    }

    #[test]
    fn hostile_listing_reports_keys_and_deletes_nothing() {
        let rules = IgnoreRules::new(&[]).unwrap();
        let listing = vec![
            obj("p/../../etc/passwd", 1, None),
            obj("p/a", 1, None),
            obj("p/a/b", 1, None),
            obj("p/ok", 1, None),
        ];
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        let codes: Vec<_> = remote
            .errors
            .iter()
            .map(|e| (e.path.as_str(), e.code))
            .collect();
        assert_eq!(
            codes,
            vec![("p/../../etc/passwd", "UNSAFE_KEY"), ("p/a", "UNSAFE_KEY")]
        );
        let plan = plan_pull(
            remote,
            &scan(&[("local-only", 1)]),
            &HashMap::new(),
            &HashMap::new(),
        );
        let rels: Vec<_> = plan.downloads.iter().map(|d| d.rel.as_str()).collect();
        assert_eq!(rels, vec!["a/b", "ok"]);
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.errors.len(), 2);
    }

    #[test]
    fn push_uploads_new_and_changed_and_deletes_only_confirmed_missing() {
        let entry = |md5: &str| SnapshotEntry {
            stat: FileStat {
                size: 1,
                mtime_ns: 1,
                ..FileStat::default()
            },
            md5: md5.into(),
            etag: None,
        };
        let snapshot = Snapshot::from([
            ("same".to_owned(), entry("1")),
            ("changed".to_owned(), entry("1")),
            ("gone".to_owned(), entry("1")),
            ("locked/inside".to_owned(), entry("1")),
        ]);
        let mut local = scan(&[("same", 1), ("changed", 1), ("new", 1)]);
        local.unreadable_dirs.push("locked".into());
        let md5s = HashMap::from([
            ("same".to_owned(), "1".to_owned()),
            ("changed".to_owned(), "2".to_owned()),
            ("new".to_owned(), "3".to_owned()),
        ]);
        let plan = plan_push(&local, &md5s, &snapshot);
        assert_eq!(plan.uploads, vec!["changed", "new"]);
        assert_eq!(plan.unchanged, vec!["same"]);
        assert_eq!(plan.deletes, vec!["gone"]);
    }
}

#[cfg(test)]
mod multipart_tests {
    use super::*;

    #[test]
    fn a_multipart_etag_is_matched_through_the_stored_md5() {
        let rules = IgnoreRules::new(&[]).unwrap();
        let obj = RemoteObject {
            key: "p/big".into(),
            size: Some(5),
            etag: Some("0123456789abcdef0123456789abcdef-3".into()),
            last_modified: None,
        };
        let remote = remote_files("p/", std::slice::from_ref(&obj), &rules, Folding::default());
        let mut local = Scan::default();
        local.files.insert(
            "big".into(),
            FileStat {
                size: 5,
                ..FileStat::default()
            },
        );
        let candidates = hash_candidates(&remote, &local);
        assert_eq!(needs_stored_md5(&remote, &candidates), vec![&obj]);
        let md5s = HashMap::from([("big".to_owned(), "aa".repeat(16))]);
        // Without metadata: downloaded again (safe).
        let plan = plan_pull(
            remote_files("p/", std::slice::from_ref(&obj), &rules, Folding::default()),
            &local,
            &md5s,
            &HashMap::new(),
        );
        assert_eq!(plan.downloads.len(), 1);
        // With the stored MD5 equal to the local one: unchanged.
        let stored = HashMap::from([("big".to_owned(), "aa".repeat(16))]);
        let plan = plan_pull(remote, &local, &md5s, &stored);
        assert!(plan.downloads.is_empty());
        assert_eq!(plan.unchanged.len(), 1);
    }
}

#[cfg(test)]
mod folding_tests {
    use super::*;

    fn obj(key: &str) -> RemoteObject {
        RemoteObject {
            key: key.into(),
            size: Some(1),
            etag: None,
            last_modified: None,
        }
    }

    #[test]
    fn names_the_filesystem_would_merge_are_reported_never_written() {
        let rules = IgnoreRules::new(&[]).unwrap();
        let listing = vec![
            obj("p/Readme.md"),
            obj("p/README.md"),
            obj("p/caf\u{e9}.txt"),
            obj("p/cafe\u{301}.txt"),
            obj("p/Dir"),
            obj("p/dir/x"),
            obj("p/ok"),
        ];
        let folding = Folding {
            case: true,
            unicode: true,
        };
        let remote = remote_files("p/", &listing, &rules, folding);
        let mut reported: Vec<&str> = remote.errors.iter().map(|e| e.path.as_str()).collect();
        reported.sort();
        assert_eq!(
            reported,
            vec![
                "p/Dir",
                "p/README.md",
                "p/Readme.md",
                "p/cafe\u{301}.txt",
                "p/caf\u{e9}.txt"
            ]
        );
        assert_eq!(remote.files.keys().collect::<Vec<_>>(), vec!["dir/x", "ok"]);
        // Case-sensitive: all are distinct files.
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        assert!(remote.errors.is_empty());
    }

    #[test]
    fn a_local_file_differing_only_in_case_is_not_local_only() {
        let rules = IgnoreRules::new(&[]).unwrap();
        let folding = Folding {
            case: true,
            unicode: false,
        };
        let remote = remote_files("p/", &[obj("p/A.txt")], &rules, folding);
        let mut scan = Scan::default();
        scan.files.insert(
            "a.txt".into(),
            FileStat {
                size: 1,
                ..FileStat::default()
            },
        );
        let plan = plan_pull(remote, &scan, &HashMap::new(), &HashMap::new());
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.downloads.len(), 1);
    }
}
