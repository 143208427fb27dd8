//! File-system access anchored at a directory handle. Every path below the
//! workspace root is resolved from handles, never through a symbolic link,
//! so a directory swapped for a link mid-sync cannot redirect a write,
//! rename or delete outside: on Linux ≥ 5.6 one `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` resolves a directory, elsewhere `openat(O_NOFOLLOW)`
//! per component. Operations on a `Dir` take one name, no separators. Files
//! are created exclusively (`O_EXCL | O_NOFOLLOW`), and only regular files
//! are read: opened without following links and non-blocking (a FIFO cannot
//! hang the open), then checked with `fstat` on the handle.
//!
//! Windows and other non-Unix systems get the same interface on paths, with
//! every component checked by `symlink_metadata` first: that closes the
//! planted-link cases but leaves a window between check and use (reasoned,
//! not tested here).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::model::FileStat;

/// What a directory entry is, never following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// FIFO, socket, device.
    Other,
}

/// What an `io::Error` carries for a path that is, or passes through, a
/// symbolic link: told apart by its type, never by its words.
#[derive(Debug)]
struct LinkRefused(PathBuf);

impl std::fmt::Display for LinkRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is a symbolic link; not followed", self.0.display())
    }
}

impl std::error::Error for LinkRefused {}

/// The error for `path`, a symbolic link that was not followed.
fn link_refused(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, LinkRefused(path.to_path_buf()))
}

/// Whether `e` is a refusal to pass through a symbolic link.
pub fn is_link_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<LinkRefused>())
}

fn not_regular(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not a regular file", path.display()),
    )
}

#[cfg(unix)]
#[path = "unix.rs"]
mod imp;

#[cfg(not(unix))]
#[path = "windows.rs"]
mod imp;

pub use imp::Dir;

/// `(parent, name)` of a relative path: `a/b/c` → (`a/b`, `c`).
pub fn split_parent(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn never_through_a_link_and_only_regular_files() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(ws.join("d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(&outside, ws.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), ws.join("d/file-link")).unwrap();
        let root = Dir::open_root(&ws).unwrap();
        let err = root.open_sub("link").unwrap_err();
        assert!(is_link_error(&err), "{err}");
        assert!(root.make_sub("link/deeper").is_err());
        assert!(!outside.join("deeper").exists());
        let d = root.open_sub("d").unwrap();
        assert!(d.open_regular("file-link").is_err());
        assert!(d.create_new("file-link").is_err());
        assert_eq!(d.stat("file-link").unwrap().unwrap().0, Kind::Symlink);
        // A FIFO is refused at once, without blocking.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            ws.join("d/fifo").as_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert_eq!(
            d.open_regular("fifo").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(root.make_sub("new/a/b").is_ok());
        assert!(ws.join("new/a/b").is_dir());
        d.create_new("x").unwrap();
        d.rename_no_replace("x", "y").unwrap();
        d.create_new("x").unwrap();
        assert_eq!(
            d.rename_no_replace("x", "y").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let mut names: Vec<_> = d
            .entries()
            .unwrap()
            .into_iter()
            .map(|(n, k)| (n.into_string().unwrap(), k))
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                ("fifo".to_owned(), Kind::Other),
                ("file-link".to_owned(), Kind::Symlink),
                ("x".to_owned(), Kind::File),
                ("y".to_owned(), Kind::File)
            ]
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            "s"
        );
    }
}
