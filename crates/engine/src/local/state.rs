//! Opening the workspace (never a root, home or system directory) and the
//! engine's state directory.

use std::path::Path;

use super::{anchor::Dir, temp_name, STATE_DIR};
use crate::error::{Error, Result};

/// The hash cache of versions before the sync base; removed when found.
const OLD_STATE_FILE: &str = "state.json";

/// Directories that are never a workspace: a pull mirrors S3 into its
/// directory, deleting what S3 does not have.
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib64",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/var/tmp",
    "/Applications",
    "/Library",
    "/System",
    "/Users",
    "/Volumes",
    "/private",
    "/private/tmp",
    "/private/var",
];

/// Refuses a workspace directory that must never be mirrored: a filesystem
/// root, the home directory, a system directory (compared after resolving
/// links), or a path starting with `~` (which Node does not expand).
pub fn check_workspace_path(path: &Path) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::invalid(
            "workspace_dir",
            format!(
                "{} is {why}; give the workspace a directory of its own",
                path.display()
            ),
        ))
    };
    if path.as_os_str().is_empty() {
        return Err(Error::invalid("workspace_dir", "is required"));
    }
    if path.starts_with("~") {
        return refuse("a path starting with '~', which is not expanded (use os.homedir())");
    }
    let resolved = resolve(path);
    if resolved.parent().is_none() {
        return refuse("the root of a filesystem");
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"));
    if home.is_some_and(|h| !h.is_empty() && resolve(Path::new(&h)) == resolved) {
        return refuse("the home directory");
    }
    if SYSTEM_DIRS
        .iter()
        .any(|d| resolve(Path::new(d)) == resolved)
    {
        return refuse("a system directory");
    }
    Ok(())
}

/// `path` made absolute with its existing part's links resolved.
fn resolve(path: &Path) -> std::path::PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// The workspace directory, opened once for an operation: everything below
/// it is reached from this handle. With `create`, made if missing and
/// checked writable. (Whether it can be listed, the scan finds out.)
/// Blocking.
pub fn open_workspace(path: &Path, create: bool) -> Result<Dir> {
    let shown = path.display();
    if create {
        std::fs::create_dir_all(path).map_err(|e| {
            Error::Workspace(format!(
                "workspace directory {shown} cannot be created: {e}"
            ))
        })?;
    }
    let root = Dir::open_root(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Workspace(format!("workspace directory {shown} does not exist"))
        }
        _ if path.is_file() => {
            Error::Workspace(format!("workspace path {shown} is not a directory"))
        }
        _ => Error::Workspace(format!("workspace directory {shown} cannot be read: {e}")),
    })?;
    if create {
        let probe = temp_name();
        root.create_new(&probe)
            .and_then(|_| root.remove_file(&probe))
            .map_err(|e| {
                Error::Workspace(format!("workspace directory {shown} is not writable: {e}"))
            })?;
    }
    Ok(root)
}

/// The state directory: `custom` (a path the user chose), else `.s3ws`
/// under the workspace root, made if missing, never through a link.
/// Blocking.
pub fn open_state_dir(root: &Dir, custom: Option<&Path>) -> Result<Dir> {
    let dir = match custom {
        Some(path) => std::fs::create_dir_all(path).and_then(|()| Dir::open_root(path)),
        None => root.make_sub(STATE_DIR),
    };
    let dir = dir.map_err(|e| {
        let path = custom.map_or_else(|| root.path().join(STATE_DIR), Path::to_path_buf);
        Error::Workspace(format!(
            "state directory {} cannot be used: {e}",
            path.display()
        ))
    })?;
    let _ = dir.remove_file(OLD_STATE_FILE);
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_home_and_system_directories_are_refused() {
        for bad in ["/", "/etc", "/tmp", "/usr/", "~/work", "/tmp/../etc", ""] {
            assert!(check_workspace_path(Path::new(bad)).is_err(), "{bad}");
        }
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert!(check_workspace_path(Path::new(&home)).is_err());
            assert!(check_workspace_path(&Path::new(&home).join("ws")).is_ok());
        }
        assert!(check_workspace_path(Path::new("/tmp/ws")).is_ok());
        assert!(check_workspace_path(Path::new("/tmp/not/there/yet")).is_ok());
    }
}
