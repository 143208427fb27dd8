//! The local side: scanning the workspace, writing files atomically, and
//! creating or pruning directories without ever following a symlink.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::error::{Action, Error, FileError, Result};
use crate::hash_cache::{COARSE_WINDOW, FINE_WINDOW};
use crate::ignore_rules::IgnoreRules;
use crate::keys::validate_relative_path;
use crate::plan::Folding;

/// Temp files of in-flight downloads are named `.s3ws-<hex>.partial`; they
/// never sync and a later pull removes leftovers of a killed process.
const TEMP_PREFIX: &str = ".s3ws-";
const TEMP_SUFFIX: &str = ".partial";

/// The engine's own directory at the workspace root: the hash cache, and the
/// lock that keeps two processes from syncing one workspace at once. It is
/// never synced, and no key may be written into it.
pub const STATE_DIR: &str = ".s3ws";
pub const STATE_FILE: &str = ".s3ws/state.json";
pub const LOCK_FILE: &str = ".s3ws/lock";

pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// Paths that belong to the engine: its state file and temp files.
pub fn is_reserved_path(rel: &str) -> bool {
    rel.split('/').next() == Some(STATE_DIR) || is_temp_name(rel.rsplit('/').next().unwrap_or(rel))
}

/// What identifies a version of a regular file without reading it: size,
/// modification and change times, and inode. A rewrite changes mtime or
/// ctime (ctime even when a tool restores mtime); a replace changes the inode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
}

impl FileStat {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let mtime_ns = meta.modified().map(nanos).unwrap_or(0);
        #[cfg(unix)]
        let (ctime_ns, ino) = {
            use std::os::unix::fs::MetadataExt;
            (
                meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
                meta.ino(),
            )
        };
        #[cfg(not(unix))]
        let (ctime_ns, ino) = (meta.created().map(nanos).unwrap_or(0), 0);
        FileStat {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
            ino,
        }
    }
}

/// Nanoseconds since the Unix epoch (negative before it).
pub fn nanos(t: std::time::SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

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
    /// Entries skipped with a reason (symlinks, names that cannot be keys).
    pub skipped: Vec<FileError>,
}

impl Scan {
    /// Whether `rel` lies under a directory the scan could not read.
    pub fn is_under_unreadable(&self, rel: &str) -> bool {
        self.unreadable_dirs.iter().any(|d| {
            rel.len() > d.len() && rel.starts_with(d.as_str()) && rel.as_bytes()[d.len()] == b'/'
        })
    }
}

/// Checks that `dir` is an existing, readable directory.
pub fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => std::fs::read_dir(dir).map(|_| ()).map_err(|e| {
            Error::Workspace(format!(
                "workspace directory {} cannot be read: {e}",
                dir.display()
            ))
        }),
        Ok(_) => Err(Error::Workspace(format!(
            "workspace path {} is not a directory",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Workspace(format!(
            "workspace directory {} does not exist",
            dir.display()
        ))),
        Err(e) => Err(Error::Workspace(format!(
            "workspace directory {} cannot be accessed: {e}",
            dir.display()
        ))),
    }
}

/// Creates the workspace directory if needed and checks it is writable.
pub fn ensure_workspace(dir: &Path) -> Result<()> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(Error::Workspace(format!(
            "workspace directory {} cannot be created: {e}",
            dir.display()
        )));
    }
    check_dir(dir)?;
    let probe = dir.join(format!(
        "{TEMP_PREFIX}probe-{}{TEMP_SUFFIX}",
        std::process::id()
    ));
    std::fs::write(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            Error::Workspace(format!(
                "workspace directory {} is not writable: {e}",
                dir.display()
            ))
        })
}

/// An exclusive lock on a workspace, held for one pull or push. The OS
/// releases it if the process dies.
#[derive(Debug)]
pub struct WorkspaceLock {
    /// Holding the open file is holding the lock.
    _file: std::fs::File,
}

/// Takes the workspace lock, or fails at once if another process holds it.
pub fn lock_workspace(root: &Path) -> Result<WorkspaceLock> {
    let dir = root.join(STATE_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let path = root.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(WorkspaceLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy(format!(
            "workspace {} is being synced by another process (lock {LOCK_FILE} is held)",
            root.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}

/// How the filesystem under `root` compares names, found by writing one
/// spelling of a probe name and looking for another. Blocking.
pub fn probe_folding(root: &Path) -> Result<Folding> {
    let dir = root.join(STATE_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let probe = |written: &str, looked_up: &str| -> Result<bool> {
        let path = dir.join(written);
        std::fs::write(&path, b"").map_err(|e| Error::io("write", &path, e))?;
        let same = dir.join(looked_up).exists();
        let _ = std::fs::remove_file(&path);
        Ok(same)
    };
    Ok(Folding {
        case: probe("probe-Aa", "probe-aA")?,
        unicode: probe("probe-\u{e9}", "probe-e\u{301}")?,
    })
}

/// The racy window for the hash cache: short when the filesystem keeps
/// sub-second timestamps (a fresh file's mtime has nanoseconds), else the
/// coarse default. Blocking.
pub fn probe_racy_window(root: &Path) -> Duration {
    let path = root.join(STATE_DIR).join("probe-time");
    let fine = std::fs::create_dir_all(root.join(STATE_DIR))
        .and_then(|()| std::fs::write(&path, b""))
        .and_then(|()| std::fs::metadata(&path))
        .and_then(|m| m.modified())
        .map(|t| nanos(t) % 1_000_000_000 != 0)
        .unwrap_or(false);
    let _ = std::fs::remove_file(&path);
    if fine {
        FINE_WINDOW
    } else {
        COARSE_WINDOW
    }
}

/// Lists the regular files of the workspace. Symlinks are never followed;
/// ignored directories are not entered. Blocking.
pub fn scan(root: &Path, rules: &IgnoreRules) -> Result<Scan> {
    check_dir(root)?;
    let mut scan = Scan::default();
    let mut stack = vec![String::new()];
    while let Some(dir_rel) = stack.pop() {
        let dir = if dir_rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&dir_rel)
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if dir_rel.is_empty() => {
                return Err(Error::Workspace(format!(
                    "workspace directory {} cannot be read: {e}",
                    root.display()
                )))
            }
            Err(_) => {
                scan.unreadable_dirs.push(dir_rel);
                continue;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else {
                scan.unreadable_dirs.push(dir_rel.clone());
                break;
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                scan.skipped.push(FileError::new(
                    Action::Read,
                    format!("{}/{}", dir_rel, name.to_string_lossy()),
                    &Error::UnsafeKey("file name is not valid UTF-8".into()),
                ));
                continue;
            };
            let rel = if dir_rel.is_empty() {
                name.to_owned()
            } else {
                format!("{dir_rel}/{name}")
            };
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                // Vanished while scanning, or unreadable: treat as unreadable,
                // so it is never taken as deleted.
                scan.unreadable_dirs.push(rel);
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                // The engine's own directory is never synced.
                if rel != STATE_DIR && !rules.is_ignored(&rel, true) {
                    stack.push(rel);
                }
            } else if ft.is_file() {
                if is_temp_name(name) {
                    scan.temp_files.push(rel);
                } else if rules.is_ignored(&rel, false) {
                    // Ignored files never sync.
                } else if let Err(e) = validate_relative_path(&rel) {
                    scan.skipped.push(FileError::new(Action::Read, rel, &e));
                } else {
                    scan.files.insert(rel, FileStat::of(&meta));
                }
            } else if ft.is_symlink() && !rules.is_ignored(&rel, false) {
                scan.skipped.push(FileError::new(
                    Action::Read,
                    rel,
                    &Error::UnsafeKey("symbolic link not followed".into()),
                ));
            }
        }
    }
    Ok(scan)
}

/// Directories of the workspace already checked (or made) as real
/// directories during one pull: each is looked at once, not once per file.
#[derive(Debug, Default)]
pub struct KnownDirs(std::sync::Mutex<HashSet<String>>);

impl KnownDirs {
    fn contains(&self, rel: &str) -> bool {
        self.0.lock().is_ok_and(|set| set.contains(rel))
    }

    fn insert(&self, rel: &str) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(rel.to_owned());
        }
    }
}

/// Creates the directories of `rel`'s parent below `root`, refusing to pass
/// through a symlink or a file. Blocking.
pub fn create_parent_dirs(root: &Path, rel: &str, known: &KnownDirs) -> Result<PathBuf> {
    let Some((parents, _)) = rel.rsplit_once('/') else {
        return Ok(root.to_path_buf());
    };
    if known.contains(parents) {
        return Ok(root.join(parents));
    }
    let mut dir = root.to_path_buf();
    for (end, segment) in parents
        .match_indices('/')
        .map(|(i, _)| i)
        .chain([parents.len()])
        .zip(parents.split('/'))
    {
        dir.push(segment);
        let prefix = &parents[..end];
        if known.contains(prefix) {
            continue;
        }
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::UnsafeKey(format!(
                    "{rel}: {} is a symbolic link; not followed",
                    dir.display()
                )))
            }
            Ok(_) => {
                return Err(Error::Io(format!(
                    "{rel}: {} exists and is not a directory",
                    dir.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&dir) {
                    Ok(()) => {}
                    // Another download created it meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io("create directory", &dir, e)),
                }
            }
            Err(e) => return Err(Error::io("inspect", &dir, e)),
        }
        known.insert(prefix);
    }
    Ok(dir)
}

/// A new temp file in `dir`, for the bytes of a download.
pub fn create_temp_file(dir: &Path) -> Result<(std::fs::File, PathBuf)> {
    loop {
        let path = dir.join(format!("{TEMP_PREFIX}{:016x}{TEMP_SUFFIX}", rand_u64()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", &path, e)),
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Moves a finished temp file to its final name, atomically. Refuses to
/// replace a directory or a symlink.
pub fn commit_temp_file(temp: &Path, dest: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => {
            return Err(Error::Io(format!(
                "{} is a directory; not replaced by a file",
                dest.display()
            )))
        }
        Ok(m) if m.file_type().is_symlink() => {
            // Replacing the link itself is safe (rename does not follow it),
            // and what S3 holds is the truth.
        }
        _ => {}
    }
    std::fs::rename(temp, dest).map_err(|e| Error::io("rename into", dest, e))
}

/// Removes the file `rel` and then its parent directories that became
/// empty, up to (not including) `root`. Blocking.
pub fn remove_file_and_empty_parents(root: &Path, rel: &str) -> Result<()> {
    let path = root.join(rel);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("delete", &path, e)),
    }
    let mut rel = rel;
    while let Some((parent, _)) = rel.rsplit_once('/') {
        if std::fs::remove_dir(root.join(parent)).is_err() {
            break; // not empty (or gone): stop climbing
        }
        rel = parent;
    }
    Ok(())
}
