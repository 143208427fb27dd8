//! Listing the workspace through directory handles: regular files by
//! relative path with their stat; everything that cannot sync, reported.

use std::sync::{Condvar, Mutex};

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

/// Adds the files below `start` (`""`: the root) to `scan`, reading
/// directories on every core: a million files are mostly `statx` calls.
fn walk(root: &Dir, rules: &IgnoreRules, scan: &mut Scan, start: String) -> Result<()> {
    let queue = Queue {
        state: Mutex::new((vec![start.clone()], 0)),
        more: Condvar::new(),
    };
    // The start directory first: only its failure fails the scan.
    let first = queue.take().expect("the start directory");
    read_dir(root, rules, scan, first, &queue, start.is_empty())?;
    queue.done();
    // No more threads than directories to start with (a small scan needs
    // none).
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
        .min(queue.lock().0.len());
    let parts: Vec<Scan> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut part = Scan::default();
                    while let Some(dir_rel) = queue.take() {
                        // Only the start directory's failure is an error.
                        let _ = read_dir(root, rules, &mut part, dir_rel, &queue, false);
                        queue.done();
                    }
                    part
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scan worker does not panic"))
            .collect()
    });
    for mut part in parts {
        scan.files.append(&mut part.files);
        scan.temp_files.append(&mut part.temp_files);
        scan.unreadable_dirs.append(&mut part.unreadable_dirs);
        scan.skipped.append(&mut part.skipped);
    }
    // The same order whichever worker found them.
    scan.temp_files.sort_unstable();
    scan.unreadable_dirs.sort_unstable();
    scan.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(())
}

/// Threads a scan reads directories on, at most.
const MAX_WORKERS: usize = 8;

/// Directories still to read, and how many are being read (their
/// subdirectories may come yet).
struct Queue {
    state: Mutex<(Vec<String>, usize)>,
    more: Condvar,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<String>, usize)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next directory to read (counted as being read until `done`),
    /// or `None` once there is none and none is being read.
    fn take(&self) -> Option<String> {
        let mut state = self.lock();
        loop {
            if let Some(dir) = state.0.pop() {
                state.1 += 1;
                return Some(dir);
            }
            if state.1 == 0 {
                return None;
            }
            state = self.more.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn push(&self, dir: String) {
        self.lock().0.push(dir);
        self.more.notify_one();
    }

    fn done(&self) {
        let mut state = self.lock();
        state.1 -= 1;
        if state.1 == 0 && state.0.is_empty() {
            self.more.notify_all();
        }
    }
}

/// Adds the files of the directory `dir_rel` to `scan`, and queues its
/// subdirectories. `start`: the workspace root, which must be readable.
fn read_dir(
    root: &Dir,
    rules: &IgnoreRules,
    scan: &mut Scan,
    dir_rel: String,
    queue: &Queue,
    start: bool,
) -> Result<()> {
    let entries = root.open_sub(&dir_rel).and_then(|d| Ok((d.entries()?, d)));
    let (entries, dir) = match entries {
        Ok(found) => found,
        Err(e) if start => {
            return Err(Error::Workspace(format!(
                "workspace directory {} cannot be read: {e}",
                root.path().display()
            )))
        }
        Err(e) => {
            let why = format!("directory cannot be read: {e}");
            scan.skip(dir_rel.clone(), SkipReason::Unreadable, why);
            scan.unreadable_dirs.push(dir_rel);
            return Ok(());
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
                    queue.push(rel);
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
    fn a_wide_and_deep_tree_is_scanned_whole_on_several_threads() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Dir::open_root(tmp.path()).unwrap();
        let rules = IgnoreRules::new(&["skip/".to_owned()]).unwrap();
        let mut want = Vec::new();
        for d in 0..40 {
            let dir = format!("d{d}/{}", "x/".repeat(d % 6));
            std::fs::create_dir_all(tmp.path().join(&dir)).unwrap();
            for f in 0..d % 5 {
                let rel = format!("{dir}f{f}");
                std::fs::write(tmp.path().join(&rel), "x").unwrap();
                want.push(rel);
            }
        }
        std::fs::create_dir_all(tmp.path().join("d3/skip")).unwrap();
        std::fs::write(tmp.path().join("d3/skip/no"), "x").unwrap();
        std::fs::write(tmp.path().join("top"), "x").unwrap();
        want.push("top".into());
        want.sort();
        for _ in 0..5 {
            let scan = scan(&root, &rules).unwrap();
            let files: Vec<&String> = scan.files.keys().collect();
            assert_eq!(files, want.iter().collect::<Vec<_>>());
        }
    }

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
