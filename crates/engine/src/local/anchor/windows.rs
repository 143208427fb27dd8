//! `Dir` elsewhere (Windows): paths, checked for links before each use.

use super::*;

/// A directory, by path; every component checked not to be a link.
#[derive(Debug)]
pub struct Dir {
    path: PathBuf,
}

fn kind_of(ft: std::fs::FileType) -> Kind {
    if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

impl Dir {
    /// Opens the directory at `path` (a path the user chose: links in it
    /// are theirs, and followed).
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        if !std::fs::metadata(path)?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::Other, "not a directory"));
        }
        Ok(Dir {
            path: path.to_owned(),
        })
    }

    /// Its path, which every access goes through.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// No inodes here: (0, 0), and the path tells directories apart.
    pub fn dev_ino(&self) -> io::Result<(u64, u64)> {
        Ok((0, 0))
    }

    fn walk(&self, rel: &str, create: bool) -> io::Result<Dir> {
        let mut path = self.path.clone();
        for name in rel.split('/').filter(|n| !n.is_empty()) {
            path.push(name);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&path)),
                Ok(_) => return Err(io::Error::new(io::ErrorKind::Other, "not a directory")),
                Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                    match std::fs::create_dir(&path) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                        _ => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Dir { path })
    }

    /// The directory `rel` (`/`-separated, "" for this one) beneath this
    /// one; a component that is a link is refused.
    pub fn open_sub(&self, rel: &str) -> io::Result<Dir> {
        self.walk(rel, false)
    }

    /// `open_sub`, creating the directories that are missing.
    pub fn make_sub(&self, rel: &str) -> io::Result<Dir> {
        self.walk(rel, true)
    }

    /// The entry `name`, not following a link; `None` when absent.
    pub fn stat(&self, name: &str) -> io::Result<Option<(Kind, FileStat)>> {
        match std::fs::symlink_metadata(self.path.join(name)) {
            Ok(m) => Ok(Some((kind_of(m.file_type()), FileStat::of(&m)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A new file `name` for writing (and reading back what was written);
    /// fails if anything is there.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path.join(name))
    }

    fn open_checked(&self, name: &str, opts: &std::fs::OpenOptions) -> io::Result<File> {
        let path = self.path.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Err(link_refused(&path)),
            Ok(m) if !m.is_file() => return Err(not_regular(&path)),
            _ => {}
        }
        let file = opts.open(&path)?;
        if !file.metadata()?.is_file() {
            return Err(not_regular(&path));
        }
        Ok(file)
    }

    /// The regular file `name`, for reading; a link, or anything else that
    /// is not a regular file, is refused.
    pub fn open_regular(&self, name: &str) -> io::Result<File> {
        self.open_checked(name, std::fs::OpenOptions::new().read(true))
    }

    /// The regular file `name`, for appending.
    pub fn open_append(&self, name: &str) -> io::Result<File> {
        self.open_checked(name, std::fs::OpenOptions::new().append(true))
    }

    /// The regular file `name`, created if missing, for a lock.
    pub fn open_lock(&self, name: &str) -> io::Result<File> {
        self.open_checked(
            name,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
    }

    /// Renames `from` to `to`, replacing a file already there.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path.join(from), self.path.join(to))
    }

    /// Renames unless `to` exists (`AlreadyExists` then).
    pub fn rename_no_replace(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::hard_link(self.path.join(from), self.path.join(to))?;
        std::fs::remove_file(self.path.join(from))
    }

    /// Deletes the file `name`.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path.join(name))
    }

    /// Deletes the empty directory `name`.
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        std::fs::remove_dir(self.path.join(name))
    }

    /// The entries of this directory, with their kind.
    pub fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            out.push((entry.file_name(), kind_of(entry.file_type()?)));
        }
        Ok(out)
    }

    /// The stat of an open file.
    pub fn file_stat(file: &File) -> io::Result<FileStat> {
        Ok(FileStat::of(&file.metadata()?))
    }
}
