//! Mapping between S3 keys and workspace-relative paths.
//!
//! A relative path accepted here is a sequence of plain `/`-separated names, so
//! joining it onto the workspace directory can never leave the workspace.

use crate::error::{Error, Result};

/// Longest file name most filesystems accept, in bytes.
const MAX_SEGMENT_BYTES: usize = 255;

/// What an object key in a listing of `prefix` stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// A file at this workspace-relative path.
    File(String),
    /// The prefix itself or a key ending in `/`: a folder marker, not a file.
    FolderMarker,
}

/// Classifies `key`, listed under `prefix` (which ends in `/`).
pub fn classify_key(prefix: &str, key: &str) -> Result<KeyKind> {
    let rel = key
        .strip_prefix(prefix)
        .ok_or_else(|| Error::UnsafeKey(format!("key {key:?} is outside the prefix {prefix:?}")))?;
    if rel.is_empty() || rel.ends_with('/') {
        return Ok(KeyKind::FolderMarker);
    }
    validate_relative_path(rel)?;
    Ok(KeyKind::File(rel.to_owned()))
}

/// Checks that `rel` is a plain relative path: non-empty `/`-separated names,
/// none of them `.` or `..`, over 255 bytes, or holding a backslash or a
/// control character.
pub fn validate_relative_path(rel: &str) -> Result<()> {
    let reject = |why: &str| Err(Error::UnsafeKey(format!("unsafe key path {rel:?}: {why}")));
    if rel.is_empty() {
        return reject("empty path");
    }
    for segment in rel.split('/') {
        match segment {
            "" => return reject("empty segment or leading '/'"),
            "." | ".." => return reject("'.' or '..' segment"),
            _ => {}
        }
        if segment.len() > MAX_SEGMENT_BYTES {
            return reject("segment longer than 255 bytes");
        }
        if segment.contains('\\') {
            return reject("backslash");
        }
        if segment.chars().any(char::is_control) {
            return reject("control character");
        }
    }
    Ok(())
}

/// Longest key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Refuses a key S3 would reject as too long (before any byte is sent).
pub fn check_key_length(key: &str) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::UnsafeKey(format!(
            "the key would be {} bytes, over S3's limit of {MAX_KEY_BYTES}; the file stays local \
             only (shorten its path)",
            key.len()
        )));
    }
    Ok(())
}

/// The S3 key of a workspace-relative path.
pub fn key_for(prefix: &str, rel: &str) -> String {
    format!("{prefix}{rel}")
}

/// Normalises a user-supplied prefix the way upstream does: a trailing `/`
/// is added when missing.
pub fn normalize_prefix(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// A path or subtree named by the caller: `dir/` (everything below `dir`)
/// or `file` (that path only). Workspace-relative, no leading `/`.
pub type Root = String;

/// A set of roots, looked up fast: exact paths, and directories (`dir/`).
#[derive(Debug, Clone, Default)]
pub struct RootSet {
    files: std::collections::HashSet<String>,
    dirs: Vec<String>,
}

impl RootSet {
    /// Adds `root`.
    pub fn insert(&mut self, root: &str) {
        if root.ends_with('/') {
            self.dirs.push(root.to_owned());
        } else {
            self.files.insert(root.to_owned());
        }
    }

    /// Removes `root` (as inserted).
    pub fn remove(&mut self, root: &str) {
        self.files.remove(root);
        self.dirs.retain(|d| d != root);
    }

    /// Whether one of the roots names `rel` (a path, or a `dir/` root).
    pub fn covers(&self, rel: &str) -> bool {
        self.files.contains(rel) || self.dirs.iter().any(|d| covers(d, rel))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty()
    }

    /// The roots, in no particular order.
    pub fn to_vec(&self) -> Vec<Root> {
        self.files.iter().chain(&self.dirs).cloned().collect()
    }
}

impl FromIterator<Root> for RootSet {
    fn from_iter<I: IntoIterator<Item = Root>>(roots: I) -> Self {
        let mut set = RootSet::default();
        for r in roots {
            set.insert(&r);
        }
        set
    }
}

/// Whether the root `root` names `rel`: the path itself, or a path below
/// the directory it names.
pub fn covers(root: &str, rel: &str) -> bool {
    match root.strip_suffix('/') {
        Some("") => true,
        Some(_) => rel.starts_with(root),
        None => rel == root,
    }
}

/// The directories a root needs, each of which must not be a file: `a/b/c`
/// → `a`, `a/b`; `a/b/` → `a`, `a/b`.
pub fn parent_dirs(root: &str) -> impl Iterator<Item = &str> {
    root.match_indices('/').map(move |(i, _)| &root[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_map_to_relative_paths() {
        let p = "users/u1/";
        assert_eq!(
            classify_key(p, "users/u1/a/b c/日本.txt").unwrap(),
            KeyKind::File("a/b c/日本.txt".into())
        );
        assert_eq!(classify_key(p, "users/u1/").unwrap(), KeyKind::FolderMarker);
        assert_eq!(
            classify_key(p, "users/u1/dir/").unwrap(),
            KeyKind::FolderMarker
        );
    }

    #[test]
    fn hostile_keys_are_rejected() {
        let p = "ws/";
        for key in [
            "ws/../x",
            "ws/a/../../x",
            "ws/./x",
            "ws//x",
            "ws/a//b",
            "ws/a\\b",
            "ws/a\0b",
            "ws/a\nb",
            "ws/..",
            "other/x",
        ] {
            let err = classify_key(p, key).unwrap_err();
            assert_eq!(err.code(), "UNSAFE_KEY", "{key:?}");
        }
        let long = format!("ws/{}", "x".repeat(256));
        assert!(classify_key(p, &long).is_err());
        let ok = format!("ws/{}", "x".repeat(255));
        assert!(classify_key(p, &ok).is_ok());
    }

    #[test]
    fn prefix_gets_trailing_slash() {
        assert_eq!(normalize_prefix("a/b"), "a/b/");
        assert_eq!(normalize_prefix("a/b/"), "a/b/");
    }
}
