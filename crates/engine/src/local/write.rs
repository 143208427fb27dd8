//! Writing and deleting in the workspace: temp files created exclusively,
//! moved into place only while the destination is as the plan saw it,
//! conflict copies, deletes that check the file first. Everything through
//! directory handles (see `anchor`). Blocking.

use std::fs::File;
use std::io;

use super::anchor::{split_parent, Dir, Kind};
use super::temp_name;
use crate::error::{Error, Result};
use crate::model::FileStat;

/// Writes all of `data` to `file` at `offset` (the file's cursor is not
/// used: pieces of a download go in side by side). Blocking.
pub fn write_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::write_all_at(file, data, offset);
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < data.len() {
            match std::os::windows::fs::FileExt::seek_write(
                file,
                &data[done..],
                offset + done as u64,
            )? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}

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

/// Where a download's local version went, or where S3's version was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCopy {
    /// The copy's name in its directory.
    pub name: String,
    /// Every name a copy could take there is hidden by the ignore rules:
    /// this one is not pushed.
    pub ignored: bool,
}

/// Moves the finished temp file `temp` to `dest` (names in `dir`),
/// atomically, only while `dest` is as the plan saw it: no file
/// (`replaces: None`), or a file whose stat is still `replaces` and that no
/// process holds open for writing. With `keep_local`, that file is first
/// moved to a conflict name (`copy_name`), which is returned. A file the
/// agent created or changed meanwhile is never replaced (`Error::Changed`);
/// neither is a directory. A symlink is replaced, never followed: links are
/// not synced.
pub fn commit_temp_file(
    dir: &Dir,
    temp: &str,
    dest: &str,
    replaces: Option<FileStat>,
    keep_local: bool,
    copy_name: &dyn Fn(&Dir, &str) -> ConflictCopy,
) -> Result<Option<ConflictCopy>> {
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
        Some((Kind::Dir, _)) => {
            let why = io::Error::new(
                io::ErrorKind::IsADirectory,
                "a directory is not replaced by a file",
            );
            Err(Error::io("replace", &shown(), why))
        }
        Some((Kind::Symlink, _)) => place(dir.rename(temp, dest)).map(|()| None),
        Some((_, stat)) if Some(stat) != replaces => Err(changed()),
        Some(_) if open_for_writing(dir, dest) => Err(held_open(&shown())),
        Some(_) if keep_local => {
            let copy = copy_name(dir, dest);
            dir.rename_no_replace(dest, &copy.name)
                .map_err(|e| Error::io("rename aside", &shown(), e))?;
            place(dir.rename_no_replace(temp, dest))?;
            Ok(Some(copy))
        }
        Some(_) => place(dir.rename(temp, dest)).map(|()| None),
    }
}

/// Moves the finished temp file `temp` to a conflict name beside `dest`
/// (whatever is at `dest` stays), and returns that name.
pub fn commit_beside(
    dir: &Dir,
    temp: &str,
    dest: &str,
    copy_name: &dyn Fn(&Dir, &str) -> ConflictCopy,
) -> Result<ConflictCopy> {
    loop {
        let copy = copy_name(dir, dest);
        match dir.rename_no_replace(temp, &copy.name) {
            Ok(()) => return Ok(copy),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("rename into", &dir.path().join(&copy.name), e)),
        }
    }
}

/// Moves the local file `name` in `dir`, still as scanned (`stat`) and
/// not held open for writing, to a conflict name; returns that name.
pub fn set_aside(
    dir: &Dir,
    name: &str,
    stat: FileStat,
    copy_name: &dyn Fn(&Dir, &str) -> ConflictCopy,
) -> Result<ConflictCopy> {
    let shown = dir.path().join(name);
    match dir
        .stat(name)
        .map_err(|e| Error::io("inspect", &shown, e))?
    {
        Some((Kind::File, now)) if now == stat => {}
        _ => {
            return Err(Error::Changed(format!(
                "{} changed locally during the pull; kept",
                shown.display()
            )))
        }
    }
    if open_for_writing(dir, name) {
        return Err(held_open(&shown));
    }
    let copy = copy_name(dir, name);
    dir.rename_no_replace(name, &copy.name)
        .map_err(|e| Error::io("rename aside", &shown, e))?;
    Ok(copy)
}

fn held_open(shown: &std::path::Path) -> Error {
    Error::InUse(format!(
        "{} is open for writing by a process; kept, not replaced (its writes would go to \
         a file no longer in the workspace)",
        shown.display()
    ))
}

/// Whether a process holds the file `name` in `dir` open for writing, or
/// mapped writable: such a file is never replaced or deleted by a pull
/// (writes through the old handle would vanish). On Linux a read lease
/// tells (it is refused while the file is open for writing anywhere): one
/// open and two `fcntl` calls, released at once. Elsewhere, and where
/// leases are refused for another reason (a file of another user, a
/// filesystem without them), not known: `false`. Blocking.
pub fn open_for_writing(dir: &Dir, name: &str) -> bool {
    dir.open_regular(name)
        .is_ok_and(|file| held_for_writing(&file))
}

/// `open_for_writing` for a file already open (read-only).
pub fn held_for_writing(file: &File) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is open for as long as `file` is borrowed; F_SETLEASE
        // takes an int argument and touches no memory.
        let taken = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
        if taken == 0 {
            // SAFETY: as above; releases the lease just taken.
            unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
            return false;
        }
        io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

/// A conflict-copy name for `name`, unique across agents: the time and
/// the workspace's `tag` (see `SyncBase::copy_tag`),
/// `stem.conflict-YYYYMMDD-HHMMSS-tag.ext`, or, when the ignore rules
/// (`ignored`, given a name in the same directory) hide that form,
/// `name.conflict-YYYYMMDD-HHMMSS-tag`; `-1`, `-2`… after the tag if taken.
/// When both forms are hidden, the first, marked `ignored`. Never a name
/// that exists in `dir`.
pub fn conflict_copy_name(
    dir: &Dir,
    name: &str,
    tag: &str,
    ignored: &dyn Fn(&str) -> bool,
) -> ConflictCopy {
    let stamp = utc_stamp(std::time::SystemTime::now());
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext)),
        _ => (name, None),
    };
    (0..)
        .find_map(|n: u32| {
            let mark = match n {
                0 => format!("conflict-{stamp}-{tag}"),
                n => format!("conflict-{stamp}-{tag}-{n}"),
            };
            let suffixed = format!("{name}.{mark}");
            let forms = match ext {
                Some(ext) => vec![format!("{stem}.{mark}.{ext}"), suffixed],
                None => vec![suffixed],
            };
            if forms.iter().any(|f| !matches!(dir.stat(f), Ok(None))) {
                return None;
            }
            Some(match forms.iter().find(|f| !ignored(f)) {
                Some(f) => ConflictCopy {
                    name: f.clone(),
                    ignored: false,
                },
                None => ConflictCopy {
                    name: forms[0].clone(),
                    ignored: true,
                },
            })
        })
        .expect("some counter is free")
}

/// The path a conflict copy was made for, and the tag of the workspace that
/// made it, if it has one (`a/x.conflict-…-tag.md` → (`a/x.md`, `tag`));
/// `None` if `rel` is no conflict copy's name.
pub fn conflict_origin(rel: &str) -> Option<(String, Option<String>)> {
    const MARK: &str = ".conflict-";
    let at = rel.rfind(MARK)?;
    let (head, tail) = (&rel[..at], &rel[at + MARK.len()..]);
    if head.is_empty() || head.ends_with('/') {
        return None;
    }
    let digits =
        |s: &str, n: usize| s.len() >= n && s.as_bytes()[..n].iter().all(u8::is_ascii_digit);
    // YYYYMMDD-HHMMSS, then -tag and -counter (both optional), then .ext or nothing.
    if !(digits(tail, 8) && tail.as_bytes().get(8) == Some(&b'-') && digits(&tail[9..], 6)) {
        return None;
    }
    let mut rest = &tail[15..];
    let mut fields = Vec::new();
    while let Some(after) = rest.strip_prefix('-') {
        let n = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        if n == 0 {
            return None;
        }
        fields.push(&after[..n]);
        rest = &after[n..];
    }
    if !(rest.is_empty() || (rest.starts_with('.') && !rest.contains('/'))) {
        return None;
    }
    let tag = fields
        .first()
        .filter(|t| t.len() == 4)
        .map(|t| (*t).to_owned());
    Some((format!("{head}{rest}"), tag))
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

/// Deletes the file `rel` if it is still as scanned (`expected`) and no
/// process holds it open for writing, then the parent directories that
/// became empty. Returns whether it deleted: a file changed since the scan
/// is the agent's work and stays.
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
    if open_for_writing(&dir, name) {
        return Ok(false);
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
        let namer = |d: &Dir, n: &str| conflict_copy_name(d, n, "ab12", &|_| false);
        // Absent when planned, present now: kept.
        let err = commit_temp_file(&dir, &temp, "notes.md", None, false, &namer).unwrap_err();
        assert_eq!(err.code(), "FILE_CHANGED");
        // Keep both: the local version moves to a conflict name.
        let copy = commit_temp_file(&dir, &temp, "notes.md", Some(scanned), true, &namer)
            .unwrap()
            .unwrap()
            .name;
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

    #[test]
    fn conflict_copies_name_their_origin_and_avoid_ignored_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_root(tmp.path()).unwrap();
        let copy = conflict_copy_name(&dir, "config.json", "ab12", &|_| false);
        assert!(
            !copy.ignored && copy.name.starts_with("config.conflict-"),
            "{copy:?}"
        );
        assert!(copy.name.ends_with("-ab12.json"), "{copy:?}");
        let origin = conflict_origin(&format!("d/{}", copy.name));
        assert_eq!(origin, Some(("d/config.json".into(), Some("ab12".into()))));
        // Taken: a counter after the tag.
        std::fs::write(tmp.path().join(&copy.name), "x").unwrap();
        let again = conflict_copy_name(&dir, "config.json", "ab12", &|_| false);
        assert!(again.name.ends_with("-ab12-1.json"), "{again:?}");
        assert_eq!(conflict_origin(&again.name).unwrap().0, "config.json");
        // `*.json` ignored: the form that keeps no extension.
        let copy = conflict_copy_name(&dir, "config.json", "ab12", &|n| n.ends_with(".json"));
        assert!(
            !copy.ignored && copy.name.starts_with("config.json.conflict-"),
            "{copy:?}"
        );
        assert_eq!(conflict_origin(&copy.name).unwrap().0, "config.json");
        // Everything ignored: reported.
        assert!(conflict_copy_name(&dir, "config.json", "ab12", &|_| true).ignored);
        assert_eq!(
            conflict_origin("notes.conflict-20261127-163456-1.md"),
            Some(("notes.md".into(), None))
        );
        assert_eq!(
            conflict_origin("Makefile.conflict-20261127-163456"),
            Some(("Makefile".into(), None))
        );
        for not_a_copy in [
            "notes.md",
            "x.conflict-2026.md",
            ".conflict-20261127-163456",
            "a/b",
        ] {
            assert_eq!(conflict_origin(not_a_copy), None, "{not_a_copy}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_open_for_writing_is_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_root(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("log.txt"), "line 1\n").unwrap();
        let scanned = dir.stat("log.txt").unwrap().unwrap().1;
        assert!(!open_for_writing(&dir, "log.txt"));
        let writer = std::fs::OpenOptions::new()
            .append(true)
            .open(tmp.path().join("log.txt"))
            .unwrap();
        assert!(open_for_writing(&dir, "log.txt"));
        let namer = |d: &Dir, n: &str| conflict_copy_name(d, n, "ab12", &|_| false);
        let (mut f, temp) = create_temp_file(&dir).unwrap();
        std::io::Write::write_all(&mut f, b"s3").unwrap();
        let err = commit_temp_file(&dir, &temp, "log.txt", Some(scanned), false, &namer);
        assert_eq!(err.unwrap_err().code(), "FILE_IN_USE");
        assert!(!delete_if_unchanged(&dir, "log.txt", scanned).unwrap());
        drop(writer);
        assert!(delete_if_unchanged(&dir, "log.txt", scanned).unwrap());
    }
}
