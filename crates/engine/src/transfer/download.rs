//! One file's download: streamed, verified as it arrives, written to a temp
//! file and renamed into place, with a copy of local work first.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::AbortOnDropHandle;

use super::{join_rel, CopyNames};
use crate::base::{BaseEntry, UNHASHED};
use crate::blocking::blocking;
use crate::error::{Error, Result, S3Error};
use crate::hashing::{etag_hash, has_content_hash_form, is_composite, ContentHasher, PART_SIZE};
use crate::local::anchor::is_link_error;
use crate::local::{
    commit_beside, commit_temp_file, create_temp_file, read_at, split_parent, write_at,
    ConflictCopy, Dir,
};
use crate::model::{nanos, FileStat};
use crate::plan::Download;
use crate::progress::FileProgress;
use crate::store::{Piece, Store};

/// A finished download: the new base entry, and the conflict copy it made
/// (workspace-relative): where the local version went when both sides had
/// changed, or where S3's version was saved beside the agent's file.
#[derive(Debug)]
pub struct Downloaded {
    pub entry: BaseEntry,
    pub conflict_copy: Option<(String, ConflictCopy)>,
    /// The local version was kept because the object was written as new
    /// (`Download::keep_if_new`), not because it changed here.
    pub unseen: bool,
}

/// The directory a download lands in, opened (made if missing) beneath the
/// root without passing a link. Blocking.
fn parent_dir(root: &Dir, rel: &str) -> Result<Dir> {
    let parent = split_parent(rel).0;
    root.make_sub(parent).map_err(|e| {
        let shown = root.path().join(parent);
        if is_link_error(&e) {
            Error::UnsafeKey(format!(
                "{rel}: {} is or passes through a symbolic link; not followed",
                shown.display()
            ))
        } else {
            Error::io("create directory", &shown, e)
        }
    })
}

/// Attempts per download when the body breaks off or fails verification
/// (request-level failures are retried by the S3 client itself).
const DOWNLOAD_ATTEMPTS: usize = 3;

/// Downloads `d` to `root/d.rel`: streamed into a temp file beside it,
/// checked against the ETag, then renamed into place.
pub async fn download(
    store: &dyn Store,
    root: &Arc<Dir>,
    d: &Download,
    names: &Arc<CopyNames>,
    stall: Duration,
    progress: &FileProgress,
) -> Result<Downloaded> {
    let mut attempt = 1;
    loop {
        let result = download_once(store, root, d, names, stall, progress).await;
        match &result {
            Err(e) if attempt < DOWNLOAD_ATTEMPTS && is_body_error(e) => attempt += 1,
            _ => return result,
        }
    }
}

/// Errors worth another attempt: a broken or corrupt body. A failed request
/// was already retried by the client.
fn is_body_error(e: &Error) -> bool {
    match e {
        Error::Integrity(_) => true,
        Error::S3(s3) => s3.is_body_error(),
        _ => false,
    }
}

/// Hashes a download as it arrives: into its content hash, whole parts
/// (the ranges of a large object, a body of up to a part) on blocking
/// threads in parallel, at most `PARTS_AT_ONCE` at a time, a small body and
/// other chunks in place; or, for an object known only by the MD5 of its
/// whole body, into that MD5 alone, in order on a thread of its own. That
/// MD5 is the content hash below `PART_SIZE`; above, the bytes are left
/// `UNHASHED` rather than MD5-hashed twice over (on two cores, the two
/// passes were most of a large pull's time).
struct BodyHasher {
    hasher: ContentHasher,
    parts: VecDeque<(u64, JoinHandle<[u8; 16]>)>,
    whole: Option<(tokio::sync::mpsc::Sender<Bytes>, JoinHandle<String>)>,
    received: u64,
}

impl BodyHasher {
    const PARTS_AT_ONCE: usize = 2;

    fn new(whole: bool) -> Self {
        let whole = whole.then(|| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(Self::PARTS_AT_ONCE);
            let task = tokio::task::spawn_blocking(move || {
                let mut md5 = Md5::new();
                while let Some(chunk) = rx.blocking_recv() {
                    md5.update(&chunk);
                }
                hex::encode(md5.finalize())
            });
            (tx, task)
        });
        BodyHasher {
            hasher: ContentHasher::default(),
            parts: VecDeque::new(),
            whole,
            received: 0,
        }
    }

    async fn add(&mut self, chunk: &Bytes, last: bool) -> Result<()> {
        self.received += chunk.len() as u64;
        if let Some((tx, _)) = &self.whole {
            // The receiver only stops with a panic, reported by `finish`.
            let _ = tx.send(chunk.clone()).await;
            return Ok(());
        }
        let len = chunk.len() as u64;
        let whole_part = len == PART_SIZE || (last && len < PART_SIZE);
        if self.hasher.at_part_boundary() && whole_part && len > IN_PLACE_MAX as u64 {
            if self.parts.len() >= Self::PARTS_AT_ONCE {
                self.settle_one().await?;
            }
            let chunk = chunk.clone();
            let task = tokio::task::spawn_blocking(move || Md5::digest(&chunk).into());
            self.parts.push_back((len, task));
            return Ok(());
        }
        while !self.parts.is_empty() {
            self.settle_one().await?;
        }
        self.hasher.update(chunk);
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<()> {
        if let Some((len, task)) = self.parts.pop_front() {
            self.hasher.push_part(len, joined(task.await)?);
        }
        Ok(())
    }

    /// The content hash (or `UNHASHED`), and the whole-body MD5 if that
    /// is what was kept.
    async fn finish(mut self) -> Result<(String, Option<String>)> {
        if let Some((tx, task)) = self.whole {
            drop(tx);
            let whole = joined(task.await)?;
            let hash = if self.received < PART_SIZE {
                whole.clone()
            } else {
                UNHASHED.to_owned()
            };
            return Ok((hash, Some(whole)));
        }
        while !self.parts.is_empty() {
            self.settle_one().await?;
        }
        Ok((self.hasher.finish(), None))
    }
}

/// How a download's bytes are checked.
enum Check {
    /// Hashed into their content hash (and a whole-body MD5 where that is
    /// what the object is known by).
    Hash(BodyHasher),
    /// Against the object's whole CRC `want`; the content hash is known
    /// (`Ok`: the metadata's, or `UNHASHED` for an object of `PART_SIZE` or
    /// more) or hashed in parts.
    Crc {
        crcs: PieceCrcs,
        want: u64,
        hash: std::result::Result<String, BodyHasher>,
    },
}

impl Check {
    /// Adds the next bytes in order.
    async fn add(&mut self, chunk: &Bytes, last: bool) -> Result<()> {
        match self {
            Check::Hash(hasher) => hasher.add(chunk, last).await,
            Check::Crc { crcs, hash, .. } => {
                crcs.add_next(chunk);
                match hash {
                    Err(hasher) => hasher.add(chunk, last).await,
                    Ok(_) => Ok(()),
                }
            }
        }
    }

    /// The CRCs of a check by CRC alone, which can take the pieces in
    /// whatever order they come.
    fn pieces_crc(&mut self) -> Option<&mut PieceCrcs> {
        match self {
            Check::Crc {
                crcs, hash: Ok(_), ..
            } => Some(crcs),
            _ => None,
        }
    }

    /// The content hash, and the whole-body MD5 if one was kept; a CRC
    /// that does not match is an integrity error.
    async fn finish(self, rel: &str) -> Result<(String, Option<String>)> {
        match self {
            Check::Hash(hasher) => hasher.finish().await,
            Check::Crc { crcs, want, hash } => {
                let algorithm = crcs.algorithm;
                match crcs.value() {
                    Some(got) if got == want => match hash {
                        Ok(hash) => Ok((hash, None)),
                        Err(hasher) => hasher.finish().await,
                    },
                    got => Err(Error::Integrity(format!(
                        "{rel}: integrity check failed: the downloaded bytes' {algorithm:?} is \
                         {}, the object's is {want:x}",
                        got.map_or("not whole".into(), |g| format!("{g:x}"))
                    ))),
                }
            }
        }
    }
}

/// A whole-object CRC made of its pieces' CRCs, taken in any order. A
/// piece that continues a run (the next piece of the same range) extends
/// that run's digest: combining CRCs is costly (a CRC64 combine took 15%
/// of a pull's CPU when every 1 MiB piece was one), so only runs are
/// combined.
struct PieceCrcs {
    algorithm: crc_fast::CrcAlgorithm,
    /// Each run by where it ends: where it starts, and its digest.
    runs: HashMap<u64, (u64, crc_fast::Digest)>,
    /// Where the next piece `add_next` is given starts.
    next: u64,
}

impl PieceCrcs {
    fn new(algorithm: crc_fast::CrcAlgorithm) -> Self {
        PieceCrcs {
            algorithm,
            runs: HashMap::new(),
            next: 0,
        }
    }

    fn add(&mut self, offset: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let (start, mut digest) = self
            .runs
            .remove(&offset)
            .unwrap_or_else(|| (offset, crc_fast::Digest::new(self.algorithm)));
        digest.update(bytes);
        self.runs
            .insert(offset + bytes.len() as u64, (start, digest));
    }

    fn add_next(&mut self, bytes: &[u8]) {
        self.add(self.next, bytes);
        self.next += bytes.len() as u64;
    }

    /// The CRC of the whole, if the pieces cover it from the start with no
    /// gap or overlap.
    fn value(self) -> Option<u64> {
        let mut runs: Vec<(u64, u64, u64)> = self
            .runs
            .into_iter()
            .map(|(end, (start, digest))| (start, end - start, digest.finalize()))
            .collect();
        runs.sort_unstable_by_key(|r| r.0);
        let mut end = 0;
        let mut whole = crc_fast::checksum(self.algorithm, &[]);
        for (start, len, crc) in runs {
            if start != end {
                return None;
            }
            whole = crc_fast::checksum_combine(self.algorithm, whole, crc, len);
            end += len;
        }
        Some(whole)
    }
}

fn joined<T>(result: std::result::Result<T, tokio::task::JoinError>) -> Result<T> {
    result.map_err(|e| Error::task("hashing task", e))
}

/// Writes a large download's pieces to its temp file at their offsets, on
/// a thread of its own, and publishes how far from the start the file is
/// written without a gap (for `check_written`).
struct SpillWriter {
    tx: tokio::sync::mpsc::Sender<Piece>,
    task: JoinHandle<Result<()>>,
}

impl SpillWriter {
    fn start(file: Arc<std::fs::File>, shown: PathBuf) -> (Self, watch::Receiver<u64>) {
        // Pieces queued while a write is slow, rather than sockets left
        // unread; past these, the ranges wait on their sockets.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(QUEUED_PIECES);
        let (mark, marked) = watch::channel(0);
        let task = tokio::task::spawn_blocking(move || {
            let mut extent = Extent::default();
            while let Some(piece) = rx.blocking_recv() {
                write_at(&file, &piece.bytes, piece.offset)
                    .map_err(|e| Error::io("write", &shown, e))?;
                if let Some(end) = extent.add(piece.offset, piece.bytes.len() as u64) {
                    mark.send_replace(end);
                }
            }
            Ok(())
        });
        (SpillWriter { tx, task }, marked)
    }

    async fn write(&mut self, piece: Piece) -> Result<()> {
        if self.tx.send(piece).await.is_ok() {
            return Ok(());
        }
        // The writer stopped, which it does only on an error: that error.
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(Error::Task("the download's writer stopped early".into())),
            Err(e) => Err(Error::task("the download's writer", e)),
        }
    }

    /// Once every piece is in the file.
    async fn finish(self) -> Result<()> {
        drop(self.tx);
        joined(self.task.await)?
    }
}

/// A download going to its temp file: the writer, the check reading it
/// back, and the file they share.
struct Spill {
    writer: SpillWriter,
    /// `None`: checked by the pieces' CRCs instead.
    checked: Option<AbortOnDropHandle<Result<(Check, u64)>>>,
    file: Arc<std::fs::File>,
}

/// The bytes written so far: the run from the start without a gap, and the
/// runs beyond it (start to end).
#[derive(Default)]
struct Extent {
    from_start: u64,
    beyond: std::collections::BTreeMap<u64, u64>,
}

impl Extent {
    /// Adds `len` bytes at `offset`; the new end of the run from the start,
    /// if it grew.
    fn add(&mut self, offset: u64, len: u64) -> Option<u64> {
        if offset > self.from_start {
            let end = self.beyond.entry(offset).or_default();
            *end = (*end).max(offset + len);
            return None;
        }
        let before = self.from_start;
        self.from_start = self.from_start.max(offset + len);
        while let Some(entry) = self.beyond.first_entry() {
            if *entry.key() > self.from_start {
                break;
            }
            self.from_start = self.from_start.max(entry.remove());
        }
        (self.from_start > before).then_some(self.from_start)
    }
}

/// Reads the temp file back in order as it is written without a gap
/// (`marked`), into `check`, in blocks of `block` bytes; once the writer is
/// done, to its end. The check and how many bytes it saw. Reading back
/// rather than checking the pieces keeps the check off the download's path
/// (a whole-body MD5 runs at its own pace, the ranges at theirs) and checks
/// the bytes the file holds.
async fn check_written(
    file: Arc<std::fs::File>,
    shown: PathBuf,
    mut marked: watch::Receiver<u64>,
    mut check: Check,
    block: u64,
) -> Result<(Check, u64)> {
    let mut at = 0;
    let mut done = false;
    loop {
        let upto = *marked.borrow_and_update();
        while upto - at >= block || (done && at < upto) {
            let len = block.min(upto - at);
            let (file, shown) = (file.clone(), shown.clone());
            let chunk = blocking(move || read_at(&file, &shown, at, len)).await?;
            at += len;
            check.add(&chunk, done && at == upto).await?;
        }
        if done {
            return Ok((check, at));
        }
        done = marked.changed().await.is_err();
    }
}

/// Bodies up to this size are gathered in memory and written with a single
/// blocking call (most workspace files); larger ones stream to the temp file.
const IN_MEMORY_MAX: usize = 1024 * 1024;
/// Bodies up to this size are hashed on the async thread (within 100 µs):
/// handing them to a blocking thread and back cost more.
const IN_PLACE_MAX: usize = 64 * 1024;
/// Pieces (of about a MiB: see the store) waiting for the writer at most.
const QUEUED_PIECES: usize = 16;
/// The blocks a streamed check reads the temp file back in: under the size
/// the allocator maps on its own, so they are reused, not faulted in anew.
const READ_BACK: u64 = 512 * 1024;

/// A download's temp file in its directory, removed unless the download
/// succeeded: on failure, and when the download is dropped mid-way (its
/// operation was cancelled), so no `.partial` file outlives it.
#[derive(Default)]
struct Spilled(Option<(Arc<Dir>, String)>);

impl Drop for Spilled {
    fn drop(&mut self) {
        if let Some((dir, temp)) = self.0.take() {
            let _ = dir.remove_file(&temp);
        }
    }
}

async fn download_once(
    store: &dyn Store,
    root: &Arc<Dir>,
    d: &Download,
    names: &Arc<CopyNames>,
    stall: Duration,
    progress: &FileProgress,
) -> Result<Downloaded> {
    let mut spilled = Spilled::default();
    let result = receive(store, root, d, names, stall, progress, &mut spilled).await;
    if result.is_ok() {
        // Committed: the temp name is the file's now.
        spilled.0 = None;
    }
    result
}

/// Streams the body, hashing it, into memory or (past `IN_MEMORY_MAX`) a
/// temp file whose path is put in `spilled`; verifies it; commits it.
async fn receive(
    store: &dyn Store,
    root: &Arc<Dir>,
    d: &Download,
    names: &Arc<CopyNames>,
    stall: Duration,
    progress: &FileProgress,
    spilled: &mut Spilled,
) -> Result<Downloaded> {
    let mut body = store.get(&d.key, d.size).await?;
    let expected = body.expected_hash();
    // The object's size as it came: one rewritten since it was listed can
    // have crossed `PART_SIZE`, which decides how it is hashed.
    let size = body.size.or(d.size);
    // An object known only by a whole-body MD5 (one uploaded elsewhere in a
    // single PUT, or by an older version) is also hashed whole, in order.
    let whole = expected
        .as_deref()
        .is_some_and(|e| !is_composite(e) && size.is_none_or(|s| s >= PART_SIZE));
    // Where the server keeps a whole-object CRC, it checks the bytes (at
    // memory speed) instead of an MD5. The content hash is then the ETag,
    // where that is it (the server's MD5s of these very bytes: never stale,
    // as metadata another writer copied over can be), else hashed in parts
    // below `PART_SIZE` and left `UNHASHED` above (no MD5 at all: a large
    // object sent in one PUT with the SDKs' default checksum comes at the
    // speed of one with ours).
    let etag_hash = body
        .etag
        .as_deref()
        .filter(|_| body.etag_is_md5)
        .and_then(etag_hash);
    let hasher = match body.checksum {
        Some(want) => Check::Crc {
            crcs: PieceCrcs::new(want.algorithm),
            want: want.value,
            hash: match expected.clone().filter(|e| {
                etag_hash.as_ref() == Some(e) && size.is_some_and(|s| has_content_hash_form(e, s))
            }) {
                Some(hash) => Ok(hash),
                None if size.is_some_and(|s| s >= PART_SIZE) => Ok(UNHASHED.to_owned()),
                None => Err(BodyHasher::new(false)),
            },
        },
        None => Check::Hash(BodyHasher::new(whole)),
    };
    let by_checksum = matches!(hasher, Check::Crc { .. });
    // Read back in whole parts where parts are hashed (in parallel), else
    // in blocks that stay on the heap.
    let block = match &hasher {
        Check::Hash(h) if h.whole.is_none() => PART_SIZE,
        _ => READ_BACK,
    };
    let mut check = Some(hasher);
    // A check by CRC alone takes each piece's CRC as it comes, in whatever
    // order: nothing is read back.
    let mut piece_crcs = check
        .as_mut()
        .and_then(Check::pieces_crc)
        .map(|crcs| std::mem::replace(crcs, PieceCrcs::new(crcs.algorithm)));
    let mut received: u64 = 0;
    let mut memory: Vec<u8> = Vec::new();
    let mut file: Option<Spill> = None;
    loop {
        // A body that stops sending (nothing arrived for `stall`, however
        // slowly it came before) is cut, here unless its store does so
        // itself, and the download retried. While a piece fills, the bytes
        // arriving are progress.
        let next = tokio::select! {
            next = body.stream.next() => next,
            () = body.life.stalled(stall, |last| progress.moving(last)) => {
                if body.watched {
                    body.stream.next().await
                } else {
                    let why = format!("nothing arrived for {stall:?}");
                    return Err(S3Error::body_failed(&d.key, why).into());
                }
            }
        };
        let Some(piece) = next else { break };
        body.life.now();
        let piece = piece?;
        let len = piece.bytes.len();
        received += len as u64;
        progress.moved(len as u64);
        if let Some(crcs) = &mut piece_crcs {
            crcs.add(piece.offset, &piece.bytes);
        }
        if file.is_none()
            && piece.offset == memory.len() as u64
            && memory.len() + len <= IN_MEMORY_MAX
        {
            memory.extend_from_slice(&piece.bytes);
            continue;
        }
        let out = match &mut file {
            Some(spill) => &mut spill.writer,
            None => {
                let (root, rel) = (root.clone(), d.rel.clone());
                // Made with its guard: a download dropped (its operation
                // cancelled) while the file is being made drops the guard
                // with the unclaimed result, and the file goes too.
                let (std_file, made) = blocking(move || {
                    let dir = parent_dir(&root, &rel)?;
                    let (file, temp) = create_temp_file(&dir)?;
                    Ok((Arc::new(file), Spilled(Some((Arc::new(dir), temp)))))
                })
                .await?;
                *spilled = made;
                let (dir, temp) = spilled.0.as_ref().expect("just made");
                let shown = dir.path().join(temp);
                let (writer, marked) = SpillWriter::start(std_file.clone(), shown.clone());
                let checked = piece_crcs.is_none().then(|| {
                    let check = check.take().expect("one check, handed over once");
                    let read = check_written(std_file.clone(), shown, marked, check, block);
                    AbortOnDropHandle::new(tokio::spawn(read))
                });
                let spill = file.insert(Spill {
                    writer,
                    checked,
                    file: std_file,
                });
                if !memory.is_empty() {
                    let bytes = Bytes::from(std::mem::take(&mut memory));
                    spill.writer.write(Piece { offset: 0, bytes }).await?;
                }
                &mut spill.writer
            }
        };
        out.write(piece).await?;
    }
    // The bytes in memory, or the file once written and read back whole.
    let memory = Bytes::from(memory);
    let (file, mut hasher, checked) = match (file, check) {
        (Some(spill), check) => {
            spill.writer.finish().await?;
            let (hasher, seen) = match (spill.checked, check) {
                (Some(checked), _) => joined(checked.await)??,
                (None, Some(check)) => (check, received),
                (None, None) => unreachable!("the check went to the file's reader"),
            };
            // The writer and the reader are done with it.
            let file = Arc::try_unwrap(spill.file)
                .map_err(|_| Error::Task("the download's file is still in use".into()))?;
            (Some(file), hasher, seen)
        }
        (None, Some(mut hasher)) => {
            if piece_crcs.is_none() {
                hasher.add(&memory, true).await?;
            }
            (None, hasher, memory.len() as u64)
        }
        (None, None) => unreachable!("the check goes to the file's reader only with the file"),
    };
    if let Some(crcs) = piece_crcs {
        *hasher.pieces_crc().expect("a check by CRC") = crcs;
    }
    if checked != received {
        return Err(Error::Integrity(format!(
            "{}: {received} bytes arrived, {checked} were read back in order",
            d.rel
        )));
    }
    // Verified before a byte reaches the final name (or, when gathered in
    // memory, the disk at all): the length always, the MD5 when known. An
    // object rewritten since it was listed (another ETag) came whole as the
    // newer object (its ranges are conditional on its ETag): its own hash
    // checks it, the listing's length no longer applies.
    let rewritten = matches!((&body.etag, &d.etag), (Some(now), Some(listed)) if now != listed);
    if !rewritten && d.size.is_some_and(|size| size != received) {
        return Err(Error::Integrity(format!(
            "{}: downloaded {received} bytes, the listing says {}",
            d.rel,
            d.size.unwrap_or_default()
        )));
    }
    let (hash, whole_md5) = hasher.finish(&d.rel).await?;
    if let Some(expected) = expected.filter(|_| !by_checksum) {
        let got = whole_md5.as_ref().unwrap_or(&hash);
        if *got != expected {
            return Err(Error::Integrity(format!(
                "{}: integrity check failed: the downloaded bytes hash to {got}, the object's hash is {expected}",
                d.rel
            )));
        }
    }
    let etag = body.etag.or_else(|| d.etag.clone());
    let unseen = d.keep_if_new && body.written_new;
    let (parent, dest) = split_parent(&d.rel);
    let target = Target {
        dest: dest.to_owned(),
        parent: parent.to_owned(),
        mtime: d.last_modified,
        replaces: d.replaces,
        keep_local: d.keep_local || unseen,
        beside: d.beside,
        names: names.clone(),
    };
    let (stat, conflict_copy) = match (file, spilled.0.clone()) {
        (Some(out), Some((dir, temp))) => blocking(move || target.commit(&dir, out, &temp)).await?,
        _ => {
            let (root, rel) = (root.clone(), d.rel.clone());
            blocking(move || {
                let dir = parent_dir(&root, &rel)?;
                let (mut out, temp) = create_temp_file(&dir)?;
                let written = std::io::Write::write_all(&mut out, &memory)
                    .map_err(|e| Error::io("write", &root.path().join(&rel), e))
                    .and_then(|()| target.commit(&dir, out, &temp));
                if written.is_err() {
                    let _ = dir.remove_file(&temp);
                }
                written
            })
            .await?
        }
    };
    let entry = BaseEntry {
        etag,
        hash,
        // Saved beside the agent's file: the base holds S3's version as the
        // one that file changed from, and no stat of it (it is not there).
        stat: stat.unwrap_or_default(),
        recorded_ns: if d.beside {
            0
        } else {
            nanos(std::time::SystemTime::now())
        },
        born: 0,
    };
    Ok(Downloaded {
        entry,
        conflict_copy: conflict_copy.map(|c| (join_rel(parent, &c.name), c)),
        unseen,
    })
}

/// Where a verified download goes (a name in its directory), and what may
/// be there.
struct Target {
    dest: String,
    /// The directory's workspace-relative path, for the ignore rules.
    parent: String,
    mtime: Option<std::time::SystemTime>,
    replaces: Option<FileStat>,
    keep_local: bool,
    beside: bool,
    names: Arc<CopyNames>,
}

impl Target {
    /// Gives the finished temp file the object's time as mtime (so the base
    /// trusts its stat at once, and any later local write shows), moves it
    /// into place (see `commit_temp_file`), or beside the name, and returns
    /// its stat at the name (`None` beside it) and the conflict copy made,
    /// if any. Blocking.
    fn commit(
        self,
        dir: &Dir,
        file: std::fs::File,
        temp: &str,
    ) -> Result<(Option<FileStat>, Option<ConflictCopy>)> {
        let shown = dir.path().join(&self.dest);
        if let Some(t) = self.mtime {
            file.set_modified(t)
                .map_err(|e| Error::io("set mtime of", &shown, e))?;
        }
        drop(file);
        let namer = self.names.namer(&self.parent);
        if self.beside {
            return Ok((None, Some(commit_beside(dir, temp, &self.dest, &namer)?)));
        }
        let copy = commit_temp_file(
            dir,
            temp,
            &self.dest,
            self.replaces,
            self.keep_local,
            &namer,
        )?;
        // The stat after the rename (which changes ctime) is the one recorded.
        let stat = match dir.stat(&self.dest) {
            Ok(Some((_, stat))) => stat,
            Ok(None) => return Err(Error::Changed(format!("{} vanished", shown.display()))),
            Err(e) => return Err(Error::io("inspect", &shown, e)),
        };
        Ok((Some(stat), copy))
    }
}

#[cfg(test)]
mod tests {
    use super::{Extent, PieceCrcs};

    #[test]
    fn pieces_in_any_order_make_the_whole_crc_and_a_gap_makes_none() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for algorithm in [
            crc_fast::CrcAlgorithm::Crc64Nvme,
            crc_fast::CrcAlgorithm::Crc32Iscsi,
            crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        ] {
            let mut crcs = PieceCrcs::new(algorithm);
            // An empty piece (a body that began with nothing) counts for nothing.
            for (start, end) in [
                (0, 0),
                (70_000, 100_000),
                (0, 1),
                (1, 30_000),
                (30_000, 70_000),
            ] {
                crcs.add(start, &data[start as usize..end]);
            }
            assert_eq!(crcs.value(), Some(crc_fast::checksum(algorithm, &data)));
            let mut gap = PieceCrcs::new(algorithm);
            gap.add(0, &data[..10]);
            gap.add(11, &data[11..20]);
            assert_eq!(gap.value(), None);
        }
    }

    #[test]
    fn the_run_from_the_start_grows_only_over_no_gap() {
        let mut e = Extent::default();
        assert_eq!(e.add(10, 5), None);
        assert_eq!(e.add(20, 5), None);
        assert_eq!(e.add(0, 4), Some(4));
        assert_eq!(e.add(4, 6), Some(15));
        // Overlaps and repeats never move it back.
        assert_eq!(e.add(0, 3), None);
        assert_eq!(e.add(15, 5), Some(25));
        assert!(e.beyond.is_empty());
    }
}
