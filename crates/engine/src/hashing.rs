//! MD5 of local files: the ETag S3 gives single-part uploads.

use std::io::Read;
use std::path::Path;

use md5::{Digest, Md5};

use crate::error::{Error, Result};

const BUF: usize = 256 * 1024;

/// MD5 of the file at `path`, streamed. Only a regular file is read: the
/// open does not block on a FIFO. Blocking: call from a blocking thread.
pub fn md5_file(path: &Path) -> Result<[u8; 16]> {
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
        return Err(Error::Io(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    md5_reader(&file, path)
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

/// MD5 of the file as lowercase hex, off the async threads.
pub async fn md5_file_hex(path: std::path::PathBuf) -> Result<String> {
    tokio::task::spawn_blocking(move || md5_file(&path).map(hex::encode))
        .await
        .map_err(|e| Error::Io(format!("hashing task failed: {e}")))?
}
