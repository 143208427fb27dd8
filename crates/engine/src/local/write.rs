//! Writing and deleting in the workspace: temp files created exclusively,
//! moved into place only while the destination is as the plan saw it,
//! conflict copies, deletes that check the file first. Everything through
//! directory handles (see `anchor`). Blocking.

use std::fs::File;
use std::io;

use super::anchor::{split_parent, Dir, Kind};
use super::{temp_name, FileStat};
use crate::error::{Error, Result};

/// A new temp file in `dir`, for the bytes of a download: its handle and name.
pub fn create_temp_file(dir: &Dir) -> Result<(File, String)> {
    loop {
        let name = temp_name();
        match dir.create_new(&name) {
            Ok(f) => return Ok((f, name)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create a temp file in", dir.path(), e)),
        }
    }
}

/// Moves the finished temp file `temp` to `dest` (names in `dir`),
/// atomically, only while `dest` is as the plan saw it: no file
/// (`replaces: None`), or a file whose stat is still `replaces`. With
/// `keep_local`, that file is first moved to a conflict name, which is
/// returned. A file the agent created or changed meanwhile is never
/// replaced (`Error::Changed`); neither is a directory. A symlink is
/// replaced, never followed: links are not synced.
pub fn commit_temp_file(
    dir: &Dir,
    temp: &str,
    dest: &str,
    replaces: Option<FileStat>,
    keep_local: bool,
) -> Result<Option<String>> {
    let shown = || dir.path().join(dest);
    let changed = || {
        Error::Changed(format!(
            "{} changed locally during the pull; kept, not replaced",
            shown().display()
        ))
    };
    let place = |r: io::Result<()>| {
        r.map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => changed(),
            _ => Error::io("rename into", &shown(), e),
        })
    };
    match dir
        .stat(dest)
        .map_err(|e| Error::io("inspect", &shown(), e))?
    {
        None => place(dir.rename_no_replace(temp, dest)).map(|()| None),
        Some((Kind::Dir, _)) => Err(Error::Io(format!(
            "{} is a directory; not replaced by a file",
            shown().display()
        ))),
        Some((Kind::Symlink, _)) => place(dir.rename(temp, dest)).map(|()| None),
        Some((_, stat)) if Some(stat) != replaces => Err(changed()),
        Some(_) if keep_local => {
            let copy = free_conflict_name(dir, dest);
            dir.rename_no_replace(dest, &copy)
                .map_err(|e| Error::io("rename aside", &shown(), e))?;
            place(dir.rename_no_replace(temp, dest))?;
            Ok(Some(copy))
        }
        Some(_) => place(dir.rename(temp, dest)).map(|()| None),
    }
}

/// `name.conflict-YYYYMMDD-HHMMSS.ext` beside `name` in `dir` (a counter
/// added if taken): where a pull keeps the local version of a conflicting
/// file.
fn free_conflict_name(dir: &Dir, name: &str) -> String {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    let stamp = utc_stamp(std::time::SystemTime::now());
    (0..)
        .map(|n| {
            let counter = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            format!("{stem}.conflict-{stamp}{counter}{ext}")
        })
        .find(|candidate| matches!(dir.stat(candidate), Ok(None)))
        .expect("some counter is free")
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_stamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
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

/// Deletes the file `rel` if it is still as scanned (`expected`), then the
/// parent directories that became empty. Returns whether it deleted: a file
/// changed since the scan is the agent's work and stays.
pub fn delete_if_unchanged(root: &Dir, rel: &str, expected: FileStat) -> Result<bool> {
    let (parent, name) = split_parent(rel);
    let shown = || root.path().join(rel);
    let dir = match root.open_sub(parent) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("open the directory of", &shown(), e)),
    };
    match dir
        .stat(name)
        .map_err(|e| Error::io("inspect", &shown(), e))?
    {
        Some((Kind::File, stat)) if stat == expected => {}
        _ => return Ok(false),
    }
    dir.remove_file(name)
        .map_err(|e| Error::io("delete", &shown(), e))?;
    prune_empty_parents(root, parent);
    Ok(true)
}

/// Removes the file `rel` (if there) and the parent directories it leaves
/// empty.
pub fn remove_file_and_empty_parents(root: &Dir, rel: &str) -> Result<()> {
    let (parent, name) = split_parent(rel);
    match root.open_sub(parent).and_then(|d| d.remove_file(name)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("delete", &root.path().join(rel), e)),
    }
    prune_empty_parents(root, parent);
    Ok(())
}

/// Removes `rel` and its parents while they are empty, up to (not
/// including) the root.
fn prune_empty_parents(root: &Dir, mut rel: &str) {
    while !rel.is_empty() {
        let (parent, name) = split_parent(rel);
        if root
            .open_sub(parent)
            .and_then(|d| d.remove_dir(name))
            .is_err()
        {
            break; // not empty (or gone): stop climbing
        }
        rel = parent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_stamps() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_797_296);
        assert_eq!(utc_stamp(t), "20261127-163456");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
    }

    #[test]
    fn commit_never_replaces_a_file_changed_since_the_scan() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_root(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("notes.md"), "agent").unwrap();
        let scanned = dir.stat("notes.md").unwrap().unwrap().1;
        let (mut f, temp) = create_temp_file(&dir).unwrap();
        std::io::Write::write_all(&mut f, b"s3").unwrap();
        // Absent when planned, present now: kept.
        let err = commit_temp_file(&dir, &temp, "notes.md", None, false).unwrap_err();
        assert_eq!(err.code(), "FILE_CHANGED");
        // Keep both: the local version moves to a conflict name.
        let copy = commit_temp_file(&dir, &temp, "notes.md", Some(scanned), true)
            .unwrap()
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("notes.md")).unwrap(),
            "s3"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(&copy)).unwrap(),
            "agent"
        );
        assert!(
            copy.starts_with("notes.conflict-") && copy.ends_with(".md"),
            "{copy}"
        );
        // Deleting checks the stat too.
        let now = dir.stat("notes.md").unwrap().unwrap().1;
        std::fs::write(tmp.path().join("notes.md"), "agent again").unwrap();
        assert!(!delete_if_unchanged(&dir, "notes.md", now).unwrap());
        assert!(tmp.path().join("notes.md").exists());
    }
}
