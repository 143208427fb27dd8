//! MD5 of local files: the ETag S3 gives single-part uploads.

use std::io::Read;
use std::path::Path;

use md5::{Digest, Md5};

use crate::error::{Error, Result};

const BUF: usize = 256 * 1024;

/// MD5 of the file at `path`, streamed. Blocking: call from a blocking thread.
pub fn md5_file(path: &Path) -> Result<[u8; 16]> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
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
