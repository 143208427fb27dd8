//! A listing of the prefix mapped to workspace paths: which keys are files,
//! which are folder markers or ignored, and which cannot be written safely.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{Error, FileError};
use crate::ignore_rules::IgnoreRules;
use crate::keys::{classify_key, KeyKind};
use crate::local::is_reserved_path;
use crate::model::{Folding, RemoteObject};

/// Where the engine keeps objects of its own under the prefix (probes of
/// what the store honours): never synced, never reported.
pub const REMOTE_STATE: &str = ".s3ws/";

/// The files of a listing, by relative path, and the keys that cannot be.
#[derive(Debug, Default)]
pub struct RemoteFiles {
    /// The objects that sync as files, by relative path.
    pub files: BTreeMap<String, RemoteObject>,
    /// Keys that cannot be written: reported, and each one's local path
    /// (when it has one) is left alone.
    pub errors: Vec<FileError>,
    /// Folded relative paths that an unwritable key names: a pull neither
    /// writes nor deletes there, since S3's content for them is unknown.
    pub blocked: HashSet<String>,
    /// Keys skipped with a warning, not errors, and why: names the engine
    /// reserves (`.s3ws` below the root, temp names; left by older versions
    /// or other tools), folder markers that carry content.
    pub skipped: Vec<(String, &'static str)>,
    /// Objects that lost a file/directory clash (a key `a` and keys under
    /// `a/`: the newer shape wins), by relative path: a pull treats them as
    /// gone here but leaves their base entries, so the next push deletes
    /// them on S3 (conditionally) and the clash ends.
    pub shadowed: BTreeMap<String, RemoteObject>,
    /// Each clash, for the warning: (the file's path, whether the
    /// directory won).
    pub clashes: Vec<(String, bool)>,
    /// How the workspace's filesystem compares names (for `blocked`).
    pub folding: Folding,
}

impl RemoteFiles {
    /// Whether a pull must leave the local path `rel` alone.
    pub fn is_blocked(&self, rel: &str) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&self.folding.fold(rel))
    }
}

impl RemoteFiles {
    /// Every object that is a workspace file on S3, the losers of
    /// file/directory clashes too: S3's state, not this disk's (what a
    /// checkpoint records and a restore weighs).
    pub fn on_s3(self) -> BTreeMap<String, RemoteObject> {
        let mut all = self.files;
        all.extend(self.shadowed);
        all
    }
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
            Ok(KeyKind::FolderMarker) if obj.size.is_some_and(|s| s > 0) => out.skipped.push((
                obj.key.clone(),
                "a key ending in '/' is a folder marker, but this one has content",
            )),
            Ok(KeyKind::FolderMarker) => {}
            // The engine's own objects under the prefix (capability probes).
            Ok(KeyKind::File(rel)) if rel.starts_with(REMOTE_STATE) => {}
            Ok(KeyKind::File(rel)) if is_reserved_path(&rel) => out
                .skipped
                .push((obj.key.clone(), "the name is reserved for sync state")),
            Ok(KeyKind::File(rel)) => {
                if !rules.is_ignored(&rel, false) {
                    out.files.insert(rel, obj.clone());
                }
            }
            Err(e) => out
                .errors
                .push(FileError::download(obj.key.clone(), None, &e)),
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
            out.blocked.insert(folding.fold(rel));
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
                    .push(FileError::download(obj.key, Some(rel.clone()), &err));
            }
        }
    }
    resolve_shape_clashes(&mut out);
    out
}

/// A key that is also the directory of other keys (`a` and `a/b`): written
/// by an older version (which could push a file replaced by a directory
/// without deleting the file's key) or another tool. The newer shape wins:
/// the file when its object is newer than every key under it, else the
/// directory. The loser is shadowed (see `RemoteFiles::shadowed`).
fn resolve_shape_clashes(out: &mut RemoteFiles) {
    let folding = out.folding;
    let names: HashMap<String, String> = out
        .files
        .keys()
        .map(|rel| (folding.fold(rel), rel.clone()))
        .collect();
    let mut clashing: Vec<String> = out
        .files
        .keys()
        .flat_map(|rel| {
            ancestors(rel)
                .map(|dir| folding.fold(dir))
                .collect::<Vec<_>>()
        })
        .filter_map(|dir| names.get(&dir).cloned())
        .collect();
    clashing.sort();
    clashing.dedup();
    // Outermost first: `a` and `a/b` and `a/b/c` are settled from the top.
    for dir in clashing {
        let Some(file) = out.files.get(&dir) else {
            continue; // shadowed by an outer clash already
        };
        let below = format!("{dir}/");
        let newest_below = out
            .files
            .range(below.clone()..)
            .take_while(|(rel, _)| rel.starts_with(&below))
            .filter_map(|(_, o)| o.last_modified)
            .max();
        let file_wins = match (file.last_modified, newest_below) {
            (Some(f), Some(d)) => f > d,
            _ => false,
        };
        let losers: Vec<String> = if file_wins {
            out.files
                .range(below.clone()..)
                .take_while(|(rel, _)| rel.starts_with(&below))
                .map(|(rel, _)| rel.clone())
                .collect()
        } else {
            vec![dir.clone()]
        };
        for rel in losers {
            if let Some(obj) = out.files.remove(&rel) {
                out.shadowed.insert(rel, obj);
            }
        }
        out.clashes.push((dir, !file_wins));
    }
}

/// `a/b/c` → `a`, `a/b`.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
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
        let mut reported: Vec<&str> = remote
            .errors
            .iter()
            .filter_map(|e| e.key.as_deref())
            .collect();
        reported.sort();
        assert_eq!(
            reported,
            vec![
                "p/README.md",
                "p/Readme.md",
                "p/cafe\u{301}.txt",
                "p/caf\u{e9}.txt"
            ]
        );
        assert_eq!(remote.files.keys().collect::<Vec<_>>(), vec!["dir/x", "ok"]);
        // `Dir` clashes with the directory `dir/`: shadowed, not an error.
        assert_eq!(remote.shadowed.keys().collect::<Vec<_>>(), vec!["Dir"]);
        // Case-sensitive: all are distinct files.
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        assert!(remote.errors.is_empty());
    }

    #[test]
    fn the_newer_shape_wins_a_file_and_directory_clash() {
        use std::time::{Duration, UNIX_EPOCH};
        let rules = IgnoreRules::new(&[]).unwrap();
        let at = |key: &str, secs: u64| RemoteObject {
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(secs)),
            ..obj(key)
        };
        // A file replaced by a directory whose old key was left behind.
        let listing = vec![at("p/a", 10), at("p/a/inner.txt", 20), at("p/b", 5)];
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        assert!(remote.errors.is_empty() && remote.blocked.is_empty());
        assert_eq!(
            remote.files.keys().collect::<Vec<_>>(),
            ["a/inner.txt", "b"]
        );
        assert_eq!(remote.shadowed.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(remote.clashes, [("a".to_owned(), true)]);
        // A directory replaced by a file: the keys below are shadowed.
        let listing = vec![at("p/a", 30), at("p/a/x", 20), at("p/a/y/z", 21)];
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        assert_eq!(remote.files.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(remote.shadowed.keys().collect::<Vec<_>>(), ["a/x", "a/y/z"]);
        assert_eq!(remote.clashes, [("a".to_owned(), false)]);
        // The engine's own objects at the root of the prefix are not files.
        let remote = remote_files("p/", &[obj("p/.s3ws/probe-1")], &rules, Folding::default());
        assert!(remote.files.is_empty() && remote.skipped.is_empty());
        assert_eq!(REMOTE_STATE, format!("{}/", crate::local::STATE_DIR));
    }

    #[test]
    fn reserved_names_are_skipped_not_errors() {
        let rules = IgnoreRules::new(&[]).unwrap();
        let listing = vec![
            obj("p/.s3ws/lock"),
            obj("p/dev2/.s3ws/base-1.jsonl"),
            obj("p/ok"),
        ];
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        assert!(remote.errors.is_empty());
        // The root's `.s3ws/` is the engine's own (probes): not even a warning.
        assert_eq!(remote.skipped.len(), 1);
        assert_eq!(remote.files.keys().collect::<Vec<_>>(), vec!["ok"]);
    }
}
