//! The local side: scanning the workspace, writing files atomically, and
//! creating or pruning directories without ever following a symlink.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::base::{COARSE_WINDOW, FINE_WINDOW};
use crate::error::{Action, Error, FileError, Result};
use crate::ignore_rules::IgnoreRules;
use crate::keys::validate_relative_path;
use crate::plan::Folding;

/// Temp files of in-flight downloads are named `.s3ws-<hex>.partial`; they
/// never sync and a later pull removes leftovers of a killed process.
const TEMP_PREFIX: &str = ".s3ws-";
const TEMP_SUFFIX: &str = ".partial";

/// The engine's own directory, by default at the workspace root: the sync
/// base and the lock that makes processes on one workspace take turns. A
/// directory of this name is never synced at any depth (a nested
/// workspace keeps its own there), and no key may be written into one.
pub const STATE_DIR: &str = ".s3ws";
const LOCK_FILE: &str = "lock";
/// The hash cache of versions before the sync base; removed when found.
const OLD_STATE_FILE: &str = "state.json";

pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// Paths that belong to the engine: anything in a state directory, and
/// temp files.
pub fn is_reserved_path(rel: &str) -> bool {
    rel.split('/').any(|s| s == STATE_DIR) || is_temp_name(rel.rsplit('/').next().unwrap_or(rel))
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

/// Takes the workspace lock in `state_dir`. While another instance (in
/// this process or another) holds it, waits up to `timeout`, calling
/// `waiting` once; then fails with `Error::Busy`. Blocking.
pub fn lock_workspace(
    state_dir: &Path,
    timeout: Duration,
    waiting: impl FnOnce(),
) -> Result<WorkspaceLock> {
    std::fs::create_dir_all(state_dir).map_err(|e| Error::io("create directory", state_dir, e))?;
    let _ = std::fs::remove_file(state_dir.join(OLD_STATE_FILE));
    let path = state_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    let deadline = std::time::Instant::now() + timeout;
    let mut waiting = Some(waiting);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(WorkspaceLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                if let Some(f) = waiting.take() {
                    f();
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Busy(format!(
                    "another instance kept the workspace lock {} for longer than \
                     lockTimeoutMs ({} ms)",
                    path.display(),
                    timeout.as_millis()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
    }
}

/// How the filesystem under the workspace compares names, found by writing
/// one spelling of a probe name into the state directory `dir` (on the
/// workspace's filesystem by default) and looking for another. Blocking.
pub fn probe_folding(dir: &Path) -> Result<Folding> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
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
pub fn probe_racy_window(state_dir: &Path) -> Duration {
    let path = state_dir.join("probe-time");
    let fine = std::fs::create_dir_all(state_dir)
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
                // The engine's own directories are never synced.
                if name != STATE_DIR && !rules.is_ignored(&rel, true) {
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

/// Moves a finished temp file to `dest`, atomically, only while `dest` is
/// as the plan saw it: no file (`replaces: None`), or a file whose stat is
/// still `replaces`. With `keep_local`, that file is first moved to a
/// conflict name, which is returned. A file the agent created or changed
/// meanwhile is never replaced (`Error::Changed`); neither is a directory.
/// A symlink is replaced (never followed): links are not synced. Blocking.
pub fn commit_temp_file(
    temp: &Path,
    dest: &Path,
    replaces: Option<FileStat>,
    keep_local: bool,
) -> Result<Option<PathBuf>> {
    let changed = || {
        Error::Changed(format!(
            "{} changed locally during the pull; kept, not replaced",
            dest.display()
        ))
    };
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            move_no_replace(temp, dest).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => changed(),
                _ => Error::io("rename into", dest, e),
            })?;
            Ok(None)
        }
        Err(e) => Err(Error::io("inspect", dest, e)),
        Ok(m) if m.is_dir() => Err(Error::Io(format!(
            "{} is a directory; not replaced by a file",
            dest.display()
        ))),
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::rename(temp, dest).map_err(|e| Error::io("rename into", dest, e))?;
            Ok(None)
        }
        Ok(m) if Some(FileStat::of(&m)) != replaces => Err(changed()),
        Ok(_) if keep_local => {
            let copy = free_conflict_name(dest);
            move_no_replace(dest, &copy).map_err(|e| Error::io("rename aside", dest, e))?;
            move_no_replace(temp, dest).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => changed(),
                _ => Error::io("rename into", dest, e),
            })?;
            Ok(Some(copy))
        }
        Ok(_) => {
            std::fs::rename(temp, dest).map_err(|e| Error::io("rename into", dest, e))?;
            Ok(None)
        }
    }
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`): a hard
/// link fails rather than replace, and the old name is removed after it.
/// Filesystems without hard links get a plain rename after a check.
fn move_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => std::fs::remove_file(from),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(std::io::ErrorKind::AlreadyExists.into());
            }
            std::fs::rename(from, to)
        }
    }
}

/// `dir/name.conflict-YYYYMMDD-HHMMSS.ext` beside `path` (a counter added
/// if taken): where a pull keeps the local version of a conflicting file.
fn free_conflict_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), format!(".{ext}")),
        _ => (name.clone(), String::new()),
    };
    let stamp = utc_stamp(std::time::SystemTime::now());
    (0..)
        .map(|n| {
            let counter = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            path.with_file_name(format!("{stem}.conflict-{stamp}{counter}{ext}"))
        })
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("some counter is free")
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_stamp(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Deletes the local file `rel` if it is still as scanned (`expected`), then
/// its parent directories that became empty. Returns whether it deleted:
/// a file changed since the scan is the agent's work and stays. Blocking.
pub fn delete_if_unchanged(root: &Path, rel: &str, expected: FileStat) -> Result<bool> {
    let path = root.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() && FileStat::of(&m) == expected => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("inspect", &path, e)),
        Ok(_) => return Ok(false),
    }
    remove_file_and_empty_parents(root, rel)?;
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_797_296);
        assert_eq!(utc_stamp(t), "20261127-163456");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
    }

    #[test]
    fn commit_never_replaces_a_file_changed_since_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("notes.md");
        let temp = dir.path().join(".s3ws-1.partial");
        std::fs::write(&dest, "agent").unwrap();
        let scanned = FileStat::of(&std::fs::symlink_metadata(&dest).unwrap());
        std::fs::write(&temp, "s3").unwrap();
        // Absent when planned, present now: kept.
        let err = commit_temp_file(&temp, &dest, None, false).unwrap_err();
        assert_eq!(err.code(), "FILE_CHANGED");
        // Keep both: the local version moves to a conflict name.
        let copy = commit_temp_file(&temp, &dest, Some(scanned), true)
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "s3");
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "agent");
        let name = copy.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("notes.conflict-") && name.ends_with(".md"),
            "{name}"
        );
        // Deleting checks the stat too.
        let now = FileStat::of(&std::fs::symlink_metadata(&dest).unwrap());
        std::fs::write(&dest, "agent again").unwrap();
        assert!(!delete_if_unchanged(dir.path(), "notes.md", now).unwrap());
        assert!(dest.exists());
    }
}
