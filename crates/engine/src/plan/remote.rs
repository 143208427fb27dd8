//! A listing of the prefix mapped to workspace paths: which keys are files,
//! which are folder markers or ignored, and which cannot be written safely.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{Action, Error, FileError};
use crate::ignore_rules::IgnoreRules;
use crate::keys::{classify_key, KeyKind};
use crate::local::{is_reserved_path, Folding};
use crate::store::RemoteObject;

/// The files of a listing, by relative path, and the keys that cannot be.
#[derive(Debug, Default)]
pub struct RemoteFiles {
    pub files: BTreeMap<String, RemoteObject>,
    /// Keys that cannot be written: reported, and each one's local path
    /// (when it has one) is left alone.
    pub errors: Vec<FileError>,
    /// Folded relative paths that an unwritable key names: a pull neither
    /// writes nor deletes there, since S3's content for them is unknown.
    pub blocked: HashSet<String>,
    /// Keys skipped with a warning, not errors, and why: names the engine
    /// reserves (`.s3ws` at any depth, temp names; left by older versions or
    /// other tools), folder markers that carry content.
    pub skipped: Vec<(String, &'static str)>,
    pub folding: Folding,
}

impl RemoteFiles {
    /// Whether a pull must leave the local path `rel` alone.
    pub fn is_blocked(&self, rel: &str) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&self.folding.fold(rel))
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
        out.blocked.insert(folding.fold(&dir));
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
    fn reserved_names_are_skipped_not_errors() {
        let rules = IgnoreRules::new(&[]).unwrap();
        let listing = vec![
            obj("p/.s3ws/lock"),
            obj("p/dev2/.s3ws/base-1.jsonl"),
            obj("p/ok"),
        ];
        let remote = remote_files("p/", &listing, &rules, Folding::default());
        assert!(remote.errors.is_empty());
        assert_eq!(remote.skipped.len(), 2);
        assert_eq!(remote.files.keys().collect::<Vec<_>>(), vec!["ok"]);
    }
}
