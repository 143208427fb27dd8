//! Reading workspace files: positional reads and content hashes (see
//! `hashing` for what a content hash is).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use md5::{Digest, Md5};

use crate::buffer::Buffer;
use crate::error::{Error, Result};
use crate::hashing::{content_hash, part_count, PART_SIZE};

/// Read buffer of a streamed hash.
const BUF: usize = 256 * 1024;

/// `len` bytes of `file` at `offset` (`path` names it in errors). Blocking.
pub fn read_at(file: &std::fs::File, path: &Path, offset: u64, len: u64) -> Result<bytes::Bytes> {
    let mut buf = Buffer::zeroed(len as usize).map_err(|e| Error::io("read", path, e))?;
    #[cfg(unix)]
    let read = std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, offset);
    #[cfg(windows)]
    let read = {
        let mut done = 0;
        let mut r = Ok(());
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            ) {
                Ok(0) => {
                    r = Err(std::io::ErrorKind::UnexpectedEof.into());
                    break;
                }
                Ok(n) => done += n,
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        r
    };
    read.map_err(|e| Error::io("read", path, e))?;
    Ok(buf.into_bytes(len as usize))
}

/// Content hash of the open regular file of `size` bytes, with the MD5s of
/// its parts when it has several (an upload sends them as each part's
/// Content-MD5 rather than hash the file again): its parts read at their
/// offsets and hashed on up to `threads` threads at once (a part in memory
/// per thread). Blocking.
pub fn hash_file(
    file: &std::fs::File,
    path: &Path,
    size: u64,
    threads: usize,
) -> Result<(String, Vec<[u8; 16]>)> {
    if size < PART_SIZE {
        return Ok((hex::encode(md5_reader(file, path)?), Vec::new()));
    }
    let count = part_count(size);
    let threads = (threads as u64).clamp(1, count);
    let mut parts = vec![[0u8; 16]; count as usize];
    std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..threads)
            .map(|lane| {
                scope.spawn(move || {
                    (lane..count)
                        .step_by(threads as usize)
                        .map(|i| {
                            let offset = i * PART_SIZE;
                            let bytes = read_at(file, path, offset, PART_SIZE.min(size - offset))?;
                            Ok((i, Md5::digest(&bytes).into()))
                        })
                        .collect::<Result<Vec<(u64, [u8; 16])>>>()
                })
            })
            .collect();
        for lane in lanes {
            let lane = lane
                .join()
                .unwrap_or_else(|_| Err(Error::Task("hashing thread panicked".into())))?;
            for (i, md5) in lane {
                parts[i as usize] = md5;
            }
        }
        Ok::<_, Error>(())
    })?;
    Ok((content_hash(size, &parts), parts))
}

/// Content hash of the file at `path` (see `hash_file`). Only a regular
/// file is read: the open does not block on a FIFO. Blocking: call from a
/// blocking thread.
pub fn content_hash_of(path: &Path) -> Result<String> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        rustix::fs::OFlags::NONBLOCK.bits() as i32,
    );
    let file = options.open(path).map_err(|e| Error::io("open", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
    if !meta.is_file() {
        let why = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
        return Err(Error::io("read", path, why));
    }
    Ok(hash_file_alone(&file, path, meta.len())?.0)
}

/// `hash_file` for a file hashed on its own: its parts on every core.
/// Blocking.
pub fn hash_file_alone(
    file: &std::fs::File,
    path: &Path,
    size: u64,
) -> Result<(String, Vec<[u8; 16]>)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    hash_file(file, path, size, threads)
}

/// MD5 of an open file from where it stands, streamed (`path` names it in
/// errors). Blocking.
pub fn md5_reader(mut file: &std::fs::File, path: &Path) -> Result<[u8; 16]> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; BUF];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

/// `read_at` of a handle, off the async threads.
pub async fn read_part(
    file: Arc<std::fs::File>,
    path: PathBuf,
    offset: u64,
    len: u64,
) -> Result<bytes::Bytes> {
    off_thread(move || read_at(&file, &path, offset, len)).await
}

/// The MD5 of a whole file from its start (a body sent in one request
/// carries it as `Content-MD5`), off the async threads.
pub async fn whole_md5(file: Arc<std::fs::File>, path: PathBuf) -> Result<[u8; 16]> {
    off_thread(move || {
        (&*file)
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("read", &path, e))?;
        md5_reader(&file, &path)
    })
    .await
}

async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::task("read task", e))?
}

/// `content_hash_of`, off the async threads.
pub async fn content_hash_file(path: PathBuf) -> Result<String> {
    off_thread(move || content_hash_of(&path)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_as_its_bytes_do_on_any_number_of_threads() {
        let size = 2 * PART_SIZE as usize + 5;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let expected = crate::hashing::hash_bytes(&data);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        for threads in [1, 2, 5] {
            let (hash, parts) = hash_file(&file, &path, size as u64, threads).unwrap();
            assert_eq!(hash, expected);
            assert_eq!(parts.len(), 3);
        }
        assert_eq!(content_hash_of(&path).unwrap(), expected);
    }
}
