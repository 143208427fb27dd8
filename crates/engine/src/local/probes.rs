//! Probes of how the workspace's filesystem behaves: how it compares names,
//! and how fine its timestamps are.

use std::time::Duration;

use super::{anchor::Dir, temp_name};
use crate::error::{Error, Result};
use crate::model::{FileStat, Folding};

/// Longer than any filesystem's timestamp granularity (FAT: 2 s): the
/// window unless the filesystem shows finer timestamps.
pub const COARSE_WINDOW: Duration = Duration::from_secs(2);
/// For filesystems with sub-second timestamps: well above the kernel's
/// coarse clock tick (≤ 10 ms) that stamps them.
pub const FINE_WINDOW: Duration = Duration::from_millis(100);

/// How the filesystem of the state directory (the workspace's, by default)
/// compares names: one spelling of a probe name is created, another looked
/// up. Blocking.
pub fn probe_folding(state: &Dir) -> Result<Folding> {
    let probe = |written: &str, looked_up: &str| -> Result<bool> {
        let tag = temp_name();
        let (written, looked_up) = (format!("{tag}{written}"), format!("{tag}{looked_up}"));
        state
            .create_new(&written)
            .map_err(|e| Error::io("create", &state.path().join(&written), e))?;
        let same = state.stat(&looked_up).ok().flatten().is_some();
        let _ = state.remove_file(&written);
        Ok(same)
    };
    Ok(Folding {
        case: probe("-Aa", "-aA")?,
        unicode: probe("-\u{e9}", "-e\u{301}")?,
    })
}

/// The racy window for the sync base: short when the filesystem keeps
/// sub-second timestamps (a fresh file's mtime has nanoseconds), else the
/// coarse default. Blocking.
pub fn probe_racy_window(state: &Dir) -> Duration {
    let name = temp_name();
    let fine = state
        .create_new(&name)
        .and_then(|f| Dir::file_stat(&f))
        .is_ok_and(|s| has_subseconds(&s));
    let _ = state.remove_file(&name);
    window(fine)
}

/// `probe_racy_window` without writing (for dry runs): the directory's own
/// timestamp tells (odds of an exact second on a fine filesystem: 1e-9).
pub fn observe_racy_window(dir: &Dir) -> Duration {
    window(
        dir.stat(".")
            .ok()
            .flatten()
            .is_some_and(|(_, s)| has_subseconds(&s)),
    )
}

fn has_subseconds(stat: &FileStat) -> bool {
    stat.mtime_ns % 1_000_000_000 != 0
}

fn window(fine: bool) -> Duration {
    if fine {
        FINE_WINDOW
    } else {
        COARSE_WINDOW
    }
}
