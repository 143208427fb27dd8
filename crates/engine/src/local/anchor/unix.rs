//! `Dir` on Unix: every path resolved from directory handles (`openat`
//! with `O_NOFOLLOW`), so no link is ever followed.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{
    fstat, mkdirat, openat, renameat, statat, unlinkat, AtFlags, FileType, Mode, OFlags, Stat,
};
use rustix::io::Errno;

use super::*;

/// `openat2` is missing (kernel < 5.6) or filtered (some container
/// sandboxes): the per-component walk is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A directory, held open.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

// The field types of `stat` differ across Unix targets (`st_mode` is 16
// bits on macOS, `st_ino` 32 bits on some): casts that are no-ops here.
#[allow(clippy::unnecessary_cast)]
pub(super) fn stat_of(st: &Stat) -> FileStat {
    FileStat {
        size: st.st_size as u64,
        mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
        ctime_ns: st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128,
        ino: st.st_ino as u64,
    }
}

#[allow(clippy::unnecessary_cast)]
fn kind_of(st: &Stat) -> Kind {
    match FileType::from_raw_mode(st.st_mode as _) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    }
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

impl Dir {
    /// Opens the directory at `path` (a path the user chose: links in it
    /// are theirs, and followed).
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The path it was opened by, for messages (access goes through the
    /// handle).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device and inode of this directory: which directory it is,
    /// whatever path reached it.
    #[allow(clippy::unnecessary_cast)]
    pub fn dev_ino(&self) -> io::Result<(u64, u64)> {
        let st = fstat(&self.fd)?;
        Ok((st.st_dev as u64, st.st_ino as u64))
    }

    /// The directory `rel` (`/`-separated, "" for this one) beneath this
    /// one, never through a symbolic link.
    pub fn open_sub(&self, rel: &str) -> io::Result<Dir> {
        let path = self.path.join(rel);
        if rel.is_empty() {
            let fd = self.fd.try_clone()?;
            return Ok(Dir { fd, path });
        }
        self.resolve(rel)
            .map(|fd| Dir { fd, path })
            .map_err(|e| self.explain(rel, e))
    }

    fn resolve(&self, rel: &str) -> Result<OwnedFd, Errno> {
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            use rustix::fs::ResolveFlags;
            let how =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.fd, rel, DIR_FLAGS, Mode::empty(), how) {
                Err(Errno::NOSYS | Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // A concurrent rename elsewhere: the walk below decides.
                Err(Errno::AGAIN) => {}
                other => return other,
            }
        }
        let mut fd = self
            .fd
            .try_clone()
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
        for name in rel.split('/') {
            fd = openat(&fd, name, DIR_FLAGS, Mode::empty())?;
        }
        Ok(fd)
    }

    /// A failed resolution, worded: which component is a link or a file.
    fn explain(&self, rel: &str, e: Errno) -> io::Error {
        if !matches!(e, Errno::LOOP | Errno::NOTDIR | Errno::XDEV) {
            return e.into();
        }
        let mut at = String::new();
        for name in rel.split('/') {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(name);
            let (parent, last) = split_parent(&at);
            let kind = openat(
                &self.fd,
                if parent.is_empty() { "." } else { parent },
                DIR_FLAGS,
                Mode::empty(),
            )
            .ok()
            .and_then(|d| statat(&d, last, AtFlags::SYMLINK_NOFOLLOW).ok());
            match kind.map(|st| kind_of(&st)) {
                Some(Kind::Dir) => continue,
                Some(Kind::Symlink) => return link_refused(&self.path.join(&at)),
                Some(_) => {
                    return io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} is not a directory", self.path.join(&at).display()),
                    )
                }
                None => break,
            }
        }
        e.into()
    }

    /// `open_sub`, creating the directories that are missing.
    pub fn make_sub(&self, rel: &str) -> io::Result<Dir> {
        match self.open_sub(rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let mut fd = self.fd.try_clone()?;
        for name in rel.split('/') {
            fd = match openat(&fd, name, DIR_FLAGS, Mode::empty()) {
                Err(e @ (Errno::LOOP | Errno::NOTDIR)) => return Err(self.explain(rel, e)),
                Err(Errno::NOENT) => {
                    match mkdirat(&fd, name, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    openat(&fd, name, DIR_FLAGS, Mode::empty())?
                }
                other => other?,
            };
        }
        Ok(Dir {
            fd,
            path: self.path.join(rel),
        })
    }

    /// The entry `name`, not following a link; `None` when absent.
    pub fn stat(&self, name: &str) -> io::Result<Option<(Kind, FileStat)>> {
        match statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some((kind_of(&st), stat_of(&st)))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A new file `name` for writing (and reading back what was written);
    /// fails if anything (a link too) is there.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(openat(&self.fd, name, flags, Mode::from_raw_mode(0o666))?.into())
    }

    /// The regular file `name`, for reading. A link, FIFO, socket or
    /// device is refused without blocking.
    pub fn open_regular(&self, name: &str) -> io::Result<File> {
        self.open_checked(name, OFlags::RDONLY, Mode::empty())
    }

    /// The regular file `name`, for appending.
    pub fn open_append(&self, name: &str) -> io::Result<File> {
        self.open_checked(name, OFlags::WRONLY | OFlags::APPEND, Mode::empty())
    }

    /// The regular file `name`, created if missing, for a lock.
    pub fn open_lock(&self, name: &str) -> io::Result<File> {
        let mode = Mode::from_raw_mode(0o666);
        self.open_checked(name, OFlags::RDWR | OFlags::CREATE, mode)
    }

    /// Opens `name` with `flags`, never through a link and without
    /// blocking, and only if it is a regular file (checked on the handle).
    fn open_checked(&self, name: &str, flags: OFlags, mode: Mode) -> io::Result<File> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = openat(&self.fd, name, flags, mode).map_err(|e| self.refusal(name, e))?;
        if kind_of(&fstat(&fd)?) != Kind::File {
            return Err(not_regular(&self.path.join(name)));
        }
        // Regular files ignore O_NONBLOCK; cleared so later reads and
        // writes are plainly blocking.
        rustix::fs::fcntl_setfl(&fd, rustix::fs::fcntl_getfl(&fd)? - OFlags::NONBLOCK)?;
        Ok(fd.into())
    }

    fn refusal(&self, name: &str, e: Errno) -> io::Error {
        match e {
            Errno::LOOP => link_refused(&self.path.join(name)),
            Errno::NXIO => not_regular(&self.path.join(name)),
            e => e.into(),
        }
    }

    /// Renames `from` to `to`, replacing a file already there.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(renameat(&self.fd, from, &self.fd, to)?)
    }

    /// Renames unless `to` exists (`AlreadyExists` then).
    pub fn rename_no_replace(&self, from: &str, to: &str) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::fs::{renameat_with, RenameFlags};
            match renameat_with(&self.fd, from, &self.fd, to, RenameFlags::NOREPLACE) {
                Err(Errno::INVAL | Errno::NOSYS) => {} // the filesystem cannot: link below
                other => return Ok(other?),
            }
        }
        rustix::fs::linkat(&self.fd, from, &self.fd, to, AtFlags::empty())?;
        Ok(unlinkat(&self.fd, from, AtFlags::empty())?)
    }

    /// Deletes the file `name`.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        Ok(unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Deletes the empty directory `name`.
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        Ok(unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?)
    }

    /// The entries of this directory (not `.` and `..`), with their kind.
    pub fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
        let fd = openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::new(fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = std::ffi::OsStr::from_bytes(name).to_owned();
            let kind = match entry.file_type() {
                FileType::RegularFile => Kind::File,
                FileType::Directory => Kind::Dir,
                FileType::Symlink => Kind::Symlink,
                FileType::Unknown => match statat(&self.fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => kind_of(&st),
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                },
                _ => Kind::Other,
            };
            out.push((name, kind));
        }
        Ok(out)
    }

    /// The stat of an open file.
    pub fn file_stat(file: &File) -> io::Result<FileStat> {
        Ok(stat_of(&fstat(file.as_fd())?))
    }
}
