//! Listing the workspace through directory handles: regular files by
//! relative path with their stat; everything that cannot sync, reported.

use super::anchor::{split_parent, Dir, Kind};
use super::{is_temp_name, STATE_DIR};
use crate::error::{Error, Result};
use crate::ignore_rules::IgnoreRules;
use crate::keys::{parent_dirs, validate_relative_path, Root};
use crate::model::{FileStat, Scan, SkipReason};

/// Lists the regular files under `root`. Links are never followed, each
/// directory is opened beneath the root without passing a link, ignored
/// directories are not entered, directories named `.s3ws` are the engine's.
/// Blocking.
pub fn scan(root: &Dir, rules: &IgnoreRules) -> Result<Scan> {
    let mut scan = Scan::default();
    walk(root, rules, &mut scan, String::new())?;
    Ok(scan)
}

/// `scan` of the paths `roots` name only (see `keys::Root`), for a part of
/// the workspace planned on its own; and the roots that cannot be: a
/// directory the root needs is a file (or link) here, or a file root is a
/// directory. Blocking.
pub fn scan_part(root: &Dir, rules: &IgnoreRules, roots: &[Root]) -> Result<(Scan, Vec<Root>)> {
    let mut scan = Scan::default();
    let mut refused = Vec::new();
    'roots: for part in roots {
        let mut present = true;
        for dir in parent_dirs(part) {
            let (parent, name) = split_parent(dir);
            let found = root.open_sub(parent).and_then(|d| d.stat(name));
            match found {
                Ok(Some((Kind::Dir, _))) if !rules.is_ignored(dir, true) => {}
                Ok(None) => {
                    present = false;
                    break;
                }
                _ => {
                    refused.push(part.clone());
                    continue 'roots;
                }
            }
        }
        if !present {
            continue;
        }
        match part.strip_suffix('/') {
            Some(dir) => walk(root, rules, &mut scan, dir.to_owned())?,
            None => {
                let (parent, name) = split_parent(part);
                let found = root.open_sub(parent).and_then(|d| d.stat(name));
                match found {
                    Ok(None) => {}
                    Ok(Some((Kind::File, stat))) => {
                        if is_temp_name(name) || rules.is_ignored(part, false) {
                            continue;
                        }
                        if validate_relative_path(part).is_ok() {
                            scan.files.insert(part.clone(), stat);
                        }
                    }
                    _ => refused.push(part.clone()),
                }
            }
        }
    }
    Ok((scan, refused))
}

/// Adds the files below `start` (`""`: the root) to `scan`.
fn walk(root: &Dir, rules: &IgnoreRules, scan: &mut Scan, start: String) -> Result<()> {
    let mut stack = vec![start];
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
    Ok(())
}

/// The file `rel` below `root`, opened for reading if it is still the
/// regular file the scan saw (`stat`), else `Error::Changed`. Blocking.
pub fn open_scanned(root: &Dir, rel: &str, stat: FileStat) -> Result<std::fs::File> {
    let (parent, name) = split_parent(rel);
    let shown = root.path().join(rel);
    let file = root
        .open_sub(parent)
        .and_then(|d| d.open_regular(name))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::Changed(format!("{rel} was removed after the scan"))
            }
            _ => Error::io("open", &shown, e),
        })?;
    if Dir::file_stat(&file).ok() != Some(stat) {
        return Err(Error::Changed(format!("{rel} changed after the scan")));
    }
    Ok(file)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::local::Dir;

    #[test]
    fn a_part_is_scanned_alone_unless_a_directory_it_needs_is_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_root(tmp.path()).unwrap();
        let rules = IgnoreRules::new(&[]).unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::write(tmp.path().join("a/b/x"), "x").unwrap();
        std::fs::write(tmp.path().join("a/y"), "y").unwrap();
        std::fs::write(tmp.path().join("f"), "f").unwrap();
        let part = |roots: &[&str]| {
            let roots: Vec<Root> = roots.iter().map(|r| (*r).to_owned()).collect();
            let (scan, refused) = scan_part(&root, &rules, &roots).unwrap();
            let files: Vec<String> = scan.files.into_keys().collect();
            refused.is_empty().then_some(files)
        };
        assert_eq!(part(&["a/b/"]), Some(vec!["a/b/x".to_owned()]));
        assert_eq!(
            part(&["a/y", "f"]),
            Some(vec!["a/y".to_owned(), "f".to_owned()])
        );
        // Not there: nothing, and no error.
        assert_eq!(part(&["none/", "a/none", "none/deeper/"]), Some(vec![]));
        // `f` is a file where the part needs a directory; `a/b` is a
        // directory where it names a file.
        assert_eq!(part(&["f/"]), None);
        assert_eq!(part(&["f/x"]), None);
        assert_eq!(part(&["a/b"]), None);
    }

    #[test]
    fn a_file_replaced_by_a_fifo_after_the_scan_is_refused_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_root(tmp.path()).unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("d/f"), "scanned").unwrap();
        let scanned = root.open_sub("d").unwrap().stat("f").unwrap().unwrap().1;
        assert!(open_scanned(&root, "d/f", scanned).is_ok());
        std::fs::remove_file(tmp.path().join("d/f")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("d/f").as_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // No writer on the FIFO: a blocking open would never return.
        let err = open_scanned(&root, "d/f", scanned).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        // Replaced by another regular file: not the scanned one either.
        std::fs::remove_file(tmp.path().join("d/f")).unwrap();
        std::fs::write(tmp.path().join("d/f"), "rewritten").unwrap();
        assert_eq!(
            open_scanned(&root, "d/f", scanned).unwrap_err().code(),
            "FILE_CHANGED"
        );
    }
}
