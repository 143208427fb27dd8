//! Listing the workspace through directory handles: regular files by
//! relative path with their stat; everything that cannot sync, reported.

use std::collections::BTreeMap;

use super::anchor::{Dir, Kind};
use super::{is_temp_name, FileStat, STATE_DIR};
use crate::error::{Error, FileError, Result};
use crate::ignore_rules::IgnoreRules;
use crate::keys::validate_relative_path;

/// What a scan of the workspace found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Regular, non-ignored files by relative path.
    pub files: BTreeMap<String, FileStat>,
    /// Leftover temp files of interrupted downloads (relative paths).
    pub temp_files: Vec<String>,
    /// Directories that could not be read (relative paths): nothing below
    /// them may be treated as deleted.
    pub unreadable_dirs: Vec<String>,
    /// Entries that cannot sync, with the reason: links, FIFOs, sockets and
    /// devices, names that cannot be keys, unreadable directories.
    pub skipped: Vec<Skipped>,
}

/// Why a local entry does not sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Links are never followed (by design: not a failure).
    Symlink,
    /// A FIFO, socket or device.
    SpecialFile,
    /// A name that cannot be an S3 key (not UTF-8, control characters…).
    UnsafeName,
    /// A directory or file that could not be read.
    Unreadable,
}

impl SkipReason {
    /// The stable code reported for it.
    pub fn code(self) -> &'static str {
        match self {
            SkipReason::Symlink => "SYMLINK",
            SkipReason::SpecialFile => "SPECIAL_FILE",
            SkipReason::UnsafeName => "UNSAFE_NAME",
            SkipReason::Unreadable => "UNREADABLE",
        }
    }
}

/// A local entry that does not sync, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: SkipReason,
    pub message: String,
}

impl Skipped {
    /// As a per-file error (every reason but a link is one for push).
    pub fn to_error(&self) -> FileError {
        FileError {
            path: self.path.clone(),
            code: self.reason.code(),
            message: format!("Not uploaded {}: {}", self.path, self.message),
        }
    }
}

impl Scan {
    /// Whether `rel` could not be read, or lies under a directory that
    /// could not: its state is unknown, so it is never taken as deleted.
    pub fn is_under_unreadable(&self, rel: &str) -> bool {
        self.unreadable_dirs.iter().any(|d| {
            rel == d
                || (rel.len() > d.len()
                    && rel.starts_with(d.as_str())
                    && rel.as_bytes()[d.len()] == b'/')
        })
    }

    fn skip(&mut self, path: String, reason: SkipReason, message: impl Into<String>) {
        let message = message.into();
        self.skipped.push(Skipped {
            path,
            reason,
            message,
        });
    }
}

/// Lists the regular files under `root`. Links are never followed, each
/// directory is opened beneath the root without passing a link, ignored
/// directories are not entered, directories named `.s3ws` are the engine's.
/// Blocking.
pub fn scan(root: &Dir, rules: &IgnoreRules) -> Result<Scan> {
    let mut scan = Scan::default();
    let mut stack = vec![String::new()];
    while let Some(dir_rel) = stack.pop() {
        let entries = root.open_sub(&dir_rel).and_then(|d| Ok((d.entries()?, d)));
        let (entries, dir) = match entries {
            Ok(found) => found,
            Err(e) if dir_rel.is_empty() => {
                return Err(Error::Workspace(format!(
                    "workspace directory {} cannot be read: {e}",
                    root.path().display()
                )))
            }
            Err(e) => {
                let why = format!("directory cannot be read: {e}");
                scan.skip(dir_rel.clone(), SkipReason::Unreadable, why);
                scan.unreadable_dirs.push(dir_rel);
                continue;
            }
        };
        for (os_name, kind) in entries {
            let join = |name: &str| {
                if dir_rel.is_empty() {
                    name.to_owned()
                } else {
                    format!("{dir_rel}/{name}")
                }
            };
            let Some(name) = os_name.to_str() else {
                // Shown with escapes, so the log names the file exactly.
                let shown = join(format!("{os_name:?}").trim_matches('"'));
                let why = "file name is not valid UTF-8; it cannot be an S3 key";
                scan.skip(shown, SkipReason::UnsafeName, why);
                continue;
            };
            let rel = join(name);
            match kind {
                Kind::Dir if name == STATE_DIR => {}
                Kind::Dir => {
                    if !rules.is_ignored(&rel, true) {
                        stack.push(rel);
                    }
                }
                Kind::File if is_temp_name(name) => scan.temp_files.push(rel),
                _ if rules.is_ignored(&rel, false) => {}
                Kind::File => match dir.stat(name) {
                    Ok(Some((Kind::File, stat))) => match validate_relative_path(&rel) {
                        Ok(()) => {
                            scan.files.insert(rel, stat);
                        }
                        Err(e) => scan.skip(rel, SkipReason::UnsafeName, e.to_string()),
                    },
                    // Gone since the listing, or replaced: seen next time.
                    Ok(_) => {}
                    Err(e) => {
                        let why = format!("cannot be inspected: {e}");
                        scan.skip(rel.clone(), SkipReason::Unreadable, why);
                        scan.unreadable_dirs.push(rel);
                    }
                },
                Kind::Symlink => scan.skip(rel, SkipReason::Symlink, "symbolic link not followed"),
                Kind::Other => scan.skip(
                    rel,
                    SkipReason::SpecialFile,
                    "not a regular file (FIFO, socket or device)",
                ),
            }
        }
    }
    Ok(scan)
}
