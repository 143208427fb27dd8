//! The workspace's `.syncignore`, read safely: only a regular file (never
//! through a link, never a FIFO or device), and only so much of it, since
//! configuration may not cost unbounded memory or time.

use std::io::Read;

use super::anchor::Dir;
use crate::error::{Error, Result};
use crate::ignore_rules::{is_pattern, IgnoreRules, SYNCIGNORE_FILE};

/// Largest `.syncignore` read.
pub const MAX_SYNCIGNORE_BYTES: u64 = 1024 * 1024;
/// Most patterns a `.syncignore` may hold (the matcher's automaton grows
/// with them; far beyond any real rules file).
pub const MAX_SYNCIGNORE_PATTERNS: usize = 5_000;

/// `rules` followed by the lines of the workspace's `.syncignore`, if that
/// file exists (see `IgnoreRules::with_lines`). Blocking.
pub fn with_syncignore(rules: &IgnoreRules, workspace: &Dir) -> Result<IgnoreRules> {
    let shown = workspace.path().join(SYNCIGNORE_FILE);
    let refused = |why: String| Error::Syncignore(format!("{} {why}", shown.display()));
    let file = match workspace.open_regular(SYNCIGNORE_FILE) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(rules.clone()),
        Err(e) => return Err(refused(format!("cannot be read: {e}"))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_SYNCIGNORE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refused(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_SYNCIGNORE_BYTES {
        return Err(refused(format!(
            "is larger than {} KiB; not used",
            MAX_SYNCIGNORE_BYTES / 1024
        )));
    }
    let text = String::from_utf8_lossy(&bytes);
    let patterns = text.lines().filter(|l| is_pattern(l)).count();
    if patterns > MAX_SYNCIGNORE_PATTERNS {
        return Err(refused(format!(
            "has {patterns} patterns, more than {MAX_SYNCIGNORE_PATTERNS}; not used"
        )));
    }
    rules.with_lines(text.lines())
}
