//! Hashing the workspace files a plan must compare, in parallel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::Workspace;
use crate::blocking::blocking;
use crate::error::{Action, Error, FileError};
use crate::local::{hash_file, held_for_writing, open_scanned, Dir};
use crate::model::{nanos, FileStat, Hashed};

/// The hashing time recorded for a file open for writing when hashed: the
/// epoch, before any file's mtime, so its stat is never trusted.
const UNTRUSTED_NS: i128 = 0;
/// Files hashed at once: hashing is CPU and disk bound, not network bound.
const HASH_CONCURRENCY: usize = 16;
/// Threads one large file's parts are hashed on, at most (small files run
/// `HASH_CONCURRENCY` at a time instead): one per core, each holding a part.
const HASH_THREADS: usize = 4;

impl Workspace {
    /// Content hashes of `files` (relative path, scanned stat), hashed in
    /// parallel off the async threads. Only the scanned regular file is read (opened
    /// beneath the root, not through a link, checked on its handle); files
    /// that changed since the scan or while read are reported and left out.
    pub(crate) async fn hash_files(
        &self,
        root: &Arc<Dir>,
        files: Vec<(String, FileStat)>,
    ) -> (HashMap<String, Hashed>, Vec<FileError>) {
        use futures::StreamExt;
        // Asked once: on Linux it reads the cgroup's CPU quota.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(HASH_THREADS);
        let results: Vec<_> = futures::stream::iter(files)
            .map(|(rel, stat)| {
                let root = root.clone();
                async move {
                    let at_ns = nanos(SystemTime::now());
                    let r = rel.clone();
                    let result = blocking(move || {
                        let file = open_scanned(&root, &r, stat)?;
                        let path = root.path().join(&r);
                        let hashed = hash_file(&file, &path, stat.size, threads)?;
                        if Dir::file_stat(&file).ok() != Some(stat) {
                            return Err(Error::Changed(format!("{r} changed while it was read")));
                        }
                        Ok((hashed, held_for_writing(&file)))
                    })
                    .await;
                    // A file open for writing (or mapped writable) may change
                    // without its stat changing (writes through a map leave
                    // mtime alone until the next write fault): its entry is
                    // never trusted by stat, so it is hashed again next time.
                    let result = result
                        .map(|(hashed, held)| (hashed, if held { UNTRUSTED_NS } else { at_ns }));
                    (rel, result)
                }
            })
            .buffer_unordered(HASH_CONCURRENCY)
            .collect()
            .await;
        let mut hashes = HashMap::with_capacity(results.len());
        let mut errors = Vec::new();
        for (rel, result) in results {
            match result {
                Ok(((hash, parts), at_ns)) => {
                    let parts = parts.into();
                    hashes.insert(rel, Hashed { hash, at_ns, parts });
                }
                Err(e) => errors.push(FileError::new(Action::Hash, rel, &e)),
            }
        }
        (hashes, errors)
    }
}
