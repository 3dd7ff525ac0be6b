//! Local files as byte sources and as atomically committed blob writers.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::{BlobWriter, BoxFuture, ByteSource, Result, StoreError};

const CHUNK: usize = 1 << 20;

/// Reads a file (or a byte range of one) in 1 MiB chunks: each read is one hop to the blocking pool,
/// straight from the page cache into a recycled buffer (no copy through a buffer of tokio's, no fresh
/// pages to fault in for every MiB).
pub struct FileSource {
    file: Arc<std::fs::File>,
    /// Where the next chunk starts.
    at: u64,
    /// The name errors give: the file itself, or the archive it was unpacked from.
    path: PathBuf,
    /// Bytes left of a range; `None` reads to the end of the file.
    remaining: Option<u64>,
}

impl FileSource {
    /// `path` from byte `offset` on, as a store's `fetch_blob` answers (the source, and the offset it
    /// starts at).
    pub async fn blob(path: &Path, offset: u64) -> Result<(Box<dyn crate::ByteSource>, u64)> {
        Ok((Box::new(FileSource::open(path, offset).await?), offset))
    }

    /// Read `path` from byte `offset` to its end. Errors name `path`.
    pub async fn open(path: &Path, offset: u64) -> Result<FileSource> {
        let owned = path.to_path_buf();
        let file = tokio::task::spawn_blocking(move || std::fs::File::open(owned))
            .await
            .expect("open task panicked")
            .map_err(|e| StoreError::io(path, e))?;
        Ok(FileSource {
            file: Arc::new(file),
            at: offset,
            path: path.to_path_buf(),
            remaining: None,
        })
    }

    /// `len` bytes of `path` from `offset` (an entry of an indexed tar). Errors name `shown` — the archive the
    /// user gave, where `path` may be a temp copy of it. A file that ends early is an error, not a short blob.
    pub async fn range(path: &Path, offset: u64, len: u64, shown: &Path) -> Result<FileSource> {
        let mut source = FileSource::open(path, offset).await.map_err(|e| match e {
            StoreError::Io { source, .. } => StoreError::io(shown, source),
            other => other,
        })?;
        source.path = shown.to_path_buf();
        source.remaining = Some(len);
        Ok(source)
    }
}

impl ByteSource for FileSource {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>>> {
        Box::pin(async move {
            let want = self
                .remaining
                .map_or(CHUNK, |r| (CHUNK as u64).min(r) as usize);
            if want == 0 {
                return Ok(None);
            }
            let (file, at) = (self.file.clone(), self.at);
            let (buf, read) = tokio::task::spawn_blocking(move || {
                let mut buf = Pooled::take();
                let read = read_full_at(&file, &mut buf.data[..want], at);
                (buf, read)
            })
            .await
            .expect("read task panicked");
            let n = read.map_err(|e| StoreError::io(&self.path, e))?;
            self.at += n as u64;
            if let Some(r) = &mut self.remaining {
                if n < want {
                    return Err(StoreError::io(
                        &self.path,
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "ends early: truncated or changed while reading",
                        ),
                    ));
                }
                *r -= n as u64;
            }
            Ok((n > 0).then(|| buf.into_bytes(n)))
        })
    }
}

/// Fill `buf` from `file` at `at`, short only at the end of the file.
fn read_full_at(file: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], at + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A [`CHUNK`]-sized read buffer that goes back to the free list when the last `Bytes` made from it is
/// dropped: a transfer then reuses memory it has already touched.
struct Pooled {
    data: Vec<u8>,
    len: usize,
}

/// Free [`CHUNK`]-long buffers for reads ([`Pooled`]) and writes ([`ChunkFile`]), at most [`POOL_KEEP`]
/// (what six transfers with two buffers each need, and a few more).
static POOL: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
const POOL_KEEP: usize = 16;

/// A [`CHUNK`]-long buffer from the free list, or a new one.
fn pool_take() -> Vec<u8> {
    POOL.lock()
        .ok()
        .and_then(|mut free| free.pop())
        .unwrap_or_else(|| vec![0; CHUNK])
}

/// `buf` back on the free list, unless the list is full.
fn pool_give(buf: Vec<u8>) {
    if buf.len() == CHUNK
        && let Ok(mut free) = POOL.lock()
        && free.len() < POOL_KEEP
    {
        free.push(buf);
    }
}

impl Pooled {
    fn take() -> Pooled {
        Pooled {
            data: pool_take(),
            len: 0,
        }
    }

    fn into_bytes(mut self, len: usize) -> Bytes {
        self.len = len;
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        pool_give(std::mem::take(&mut self.data));
    }
}

/// A file written through recycled [`CHUNK`]-sized buffers: each chunk a transfer hands over is copied in
/// at once (so the network's buffers are free again for the next read, and no fresh memory is touched per
/// blob), and each full buffer is written in one hop to the blocking pool while the next one fills. At most
/// two buffers per file.
pub(crate) struct ChunkFile {
    file: Arc<std::fs::File>,
    /// The buffer filling (from the pool), and how much of it is filled.
    buf: Option<Vec<u8>>,
    filled: usize,
    /// The buffer being written.
    writing: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl ChunkFile {
    /// Append to `file` from its current position.
    pub(crate) fn new(file: std::fs::File) -> ChunkFile {
        ChunkFile {
            file: Arc::new(file),
            buf: None,
            filled: 0,
            writing: None,
        }
    }

    pub(crate) async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let buf = self.buf.get_or_insert_with(pool_take);
            let n = rest.len().min(CHUNK - self.filled);
            buf[self.filled..self.filled + n].copy_from_slice(&rest[..n]);
            self.filled += n;
            rest = &rest[n..];
            if self.filled == CHUNK {
                self.send().await?;
            }
        }
        Ok(())
    }

    /// Wait for the buffer being written, then start writing the one filled.
    async fn send(&mut self) -> std::io::Result<()> {
        self.wait().await?;
        let Some(buf) = self.buf.take() else {
            return Ok(());
        };
        let (filled, file) = (std::mem::take(&mut self.filled), self.file.clone());
        self.writing = Some(tokio::task::spawn_blocking(move || {
            write_out(&file, buf, filled)
        }));
        Ok(())
    }

    /// The write in flight, finished. Safe to cancel: the handle is kept until the write has ended, so a
    /// later call waits for it again rather than writing beside it.
    async fn wait(&mut self) -> std::io::Result<()> {
        let Some(writing) = self.writing.as_mut() else {
            return Ok(());
        };
        let ended = writing.await;
        self.writing = None;
        joined(ended)
    }

    /// Every chunk handed over is in the file.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        self.send().await?;
        self.wait().await
    }

    /// Write what is left and then run `then` with the file, in one hop to the blocking pool (a small
    /// blob's only write and its commit together). `then` does not run when a write fails.
    pub(crate) async fn close_with<T: Send + 'static>(
        mut self,
        then: impl FnOnce(std::fs::File) -> T + Send + 'static,
    ) -> std::io::Result<T> {
        self.wait().await?;
        let (buf, filled) = (self.buf.take(), self.filled);
        let file = Arc::try_unwrap(self.file)
            .map_err(|_| std::io::Error::other("a file write is still in flight"))?;
        let closing = tokio::task::spawn_blocking(move || {
            if let Some(buf) = buf {
                write_out(&file, buf, filled)?;
            }
            Ok(then(file))
        });
        joined(closing.await)
    }
}

/// The first `filled` bytes of `buf` appended to `file`; the buffer goes back to the pool either way.
fn write_out(file: &std::fs::File, buf: Vec<u8>, filled: usize) -> std::io::Result<()> {
    use std::io::Write;
    let written = (&*file).write_all(&buf[..filled]);
    pool_give(buf);
    written
}

/// What a blocking file task returned, a panic in it as an I/O error.
fn joined<T>(ended: Result<std::io::Result<T>, tokio::task::JoinError>) -> std::io::Result<T> {
    ended.map_err(|e| std::io::Error::other(format!("a file write failed: {e}")))?
}

/// A small blob (a config, a package's `zarf.yaml`) read whole from any store: refused before a byte is
/// fetched when the descriptor says more than `cap`, never buffered past the descriptor's size, and
/// verified against `desc`.
pub async fn read_small(
    store: &dyn crate::ReadStore,
    desc: &ferry_oci::Descriptor,
    cap: u64,
) -> Result<Bytes> {
    if desc.size > cap {
        return Err(StoreError::TooLarge {
            store: store.describe(),
            digest: desc.digest.clone(),
            size: desc.size,
            cap,
        });
    }
    let (mut source, start) = store.fetch_blob(desc, 0).await?;
    debug_assert_eq!(start, 0, "a read from byte 0 starts at 0");
    let mut buf = BytesMut::with_capacity(desc.size as usize);
    while let Some(chunk) = source.next_chunk().await? {
        buf.extend_from_slice(&chunk);
        if buf.len() as u64 > desc.size {
            // More than the descriptor says: verification names the mismatch; stop reading here.
            break;
        }
    }
    crate::transfer::verify_bytes(&store.describe(), desc, &buf)?;
    Ok(buf.freeze())
}

/// Writes a blob to a temp file in `tmp_dir` and renames it to `dest` on commit, read-only, so a reader
/// sees either nothing or the whole verified blob.
pub struct AtomicFileWriter {
    temp: tempfile::TempPath,
    file: ChunkFile,
    dest: PathBuf,
    durable: bool,
}

impl AtomicFileWriter {
    /// `durable` fsyncs the data before the rename: for long-lived stores (the cache) where a crash must not
    /// leave a torn file under a digest name.
    pub async fn create(tmp_dir: &Path, dest: PathBuf, durable: bool) -> Result<AtomicFileWriter> {
        let named = in_dir(tmp_dir, || {
            tempfile::Builder::new()
                .prefix(".ferry-")
                .tempfile_in(tmp_dir)
        })
        .map_err(|e| StoreError::io(tmp_dir, e))?;
        let (std_file, temp) = named.into_parts();
        Ok(AtomicFileWriter {
            temp,
            file: ChunkFile::new(std_file),
            dest,
            durable,
        })
    }
}

impl BlobWriter for AtomicFileWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.file
                .write(chunk)
                .await
                .map_err(|e| StoreError::io(&*self.temp, e))
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        self.commit_then(|| {})
    }
}

impl AtomicFileWriter {
    /// [`BlobWriter::commit`], then `after` (a stamp, a note that the blob is verified) on the same
    /// blocking thread: one hop for both.
    pub fn commit_then(
        self: Box<Self>,
        after: impl FnOnce() + Send + 'static,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let AtomicFileWriter {
                temp,
                file,
                dest,
                durable,
            } = *self;
            let shown = temp.to_path_buf();
            file.close_with(move |file| {
                commit_file(file, temp, &dest, durable)?;
                after();
                Ok(())
            })
            .await
            .map_err(|e| StoreError::io(&shown, e))?
        })
    }
}

fn commit_file(
    file: std::fs::File,
    temp: tempfile::TempPath,
    dest: &Path,
    durable: bool,
) -> Result<()> {
    commit_temp(&file, temp, dest, READ_ONLY, durable)
}

const READ_ONLY: u32 = 0o444;
const READ_WRITE: u32 = 0o644;

/// The one way a temp file becomes `dest`: synced (when `durable`), given its final mode, renamed over
/// `dest` (creating its directory). A reader sees the old `dest` or the whole new one, never part of it.
fn commit_temp(
    file: &std::fs::File,
    temp: tempfile::TempPath,
    dest: &Path,
    mode: u32,
    durable: bool,
) -> Result<()> {
    if durable {
        file.sync_all().map_err(|e| StoreError::io(&*temp, e))?;
    }
    set_mode(&temp, mode)?;
    // The directory is there nearly always: made only when the rename says it is missing.
    let temp = match temp.persist(dest) {
        Ok(()) => return Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::NotFound => e.path,
        Err(e) => return Err(StoreError::io(dest, e.error)),
    };
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
    }
    temp.persist(dest)
        .map_err(|e| StoreError::io(dest, e.error))?;
    Ok(())
}

/// A file that appears at `dest` only when complete (an archive being written): a temp file in `dest`'s
/// directory (same filesystem, so the rename is atomic), removed if dropped without [`StagedFile::commit`].
pub struct StagedFile {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl StagedFile {
    /// A new, empty temp file in `dest`'s directory (created if missing), to become `dest` on commit.
    pub fn beside(dest: &Path) -> Result<StagedFile> {
        let dir = parent_dir(dest);
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let temp = tempfile::Builder::new()
            .prefix(".ferry-")
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|e| StoreError::io(&dir, e))?;
        Ok(StagedFile {
            temp,
            dest: dest.to_path_buf(),
        })
    }

    /// A second handle on the temp file, to write through (e.g. into a tar builder).
    pub fn reopen(&self) -> Result<std::fs::File> {
        self.temp
            .reopen()
            .map_err(|e| StoreError::io(self.temp.path(), e))
    }

    /// The temp file's path (not `dest`), to write to by name.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Sync and rename into place (mode 0644); returns the file's length.
    pub fn commit(self) -> Result<u64> {
        let (file, temp) = self.temp.into_parts();
        let len = file
            .metadata()
            .map_err(|e| StoreError::io(&*temp, e))?
            .len();
        commit_temp(&file, temp, &self.dest, READ_WRITE, true)?;
        Ok(len)
    }
}

/// A directory that appears at `dest` only when complete (a pulled package): built in a temp directory
/// beside `dest`, renamed into place by [`StagedDir::commit`], removed if dropped before.
pub struct StagedDir {
    temp: tempfile::TempDir,
    dest: PathBuf,
}

impl StagedDir {
    /// A new, empty temp directory (mode 0755) in `dest`'s parent (created if missing), to become `dest` on
    /// commit.
    pub fn beside(dest: &Path) -> Result<StagedDir> {
        let dir = parent_dir(dest);
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let temp = tempfile::Builder::new()
            .prefix(".ferry-staging-")
            .tempdir_in(&dir)
            .map_err(|e| StoreError::io(&dir, e))?;
        // A temp directory is private (0700); the directory it becomes is not.
        set_mode(temp.path(), 0o755)?;
        Ok(StagedDir {
            temp,
            dest: dest.to_path_buf(),
        })
    }

    /// The temp directory's path, to build the content in.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Rename into place. `dest` may exist only as an empty directory (which `rename` replaces).
    pub fn commit(self) -> Result<()> {
        let from = self.temp.keep();
        std::fs::rename(&from, &self.dest).map_err(|e| {
            let _ = std::fs::remove_dir_all(&from);
            StoreError::io(&self.dest, e)
        })
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Blobs are immutable: mode 0444, as Zarf and oras write them.
pub fn set_read_only(path: &Path) -> Result<()> {
    set_mode(path, READ_ONLY)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| StoreError::io(path, e))?;
    }
    #[cfg(not(unix))]
    {
        let mut p = std::fs::metadata(path)
            .map_err(|e| StoreError::io(path, e))?
            .permissions();
        p.set_readonly(mode & 0o200 == 0);
        std::fs::set_permissions(path, p).map_err(|e| StoreError::io(path, e))?;
    }
    Ok(())
}

/// Write `bytes` to `dest` atomically (temp file in the same directory, synced, then renamed).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let staged = StagedFile::beside(dest)?;
    use std::io::Write;
    staged
        .temp
        .as_file()
        .write_all(bytes)
        .map_err(|e| StoreError::io(staged.path(), e))?;
    staged.commit().map(|_| ())
}

/// Hard-link `from` to `dest`: a link appears whole or not at all. One `link` call when `dest` is free;
/// a `dest` already there (a file that failed verification) is replaced atomically: linked under a temp
/// name in `tmp_dir`, then renamed over it. `Ok(false)` when the filesystem cannot link (another device,
/// no support), or when `from` went away (another process sharing the cache evicted it): the caller
/// streams the blob instead.
pub fn link_atomic(from: &Path, dest: &Path, tmp_dir: &Path) -> Result<bool> {
    for made_parent in [false, true] {
        match std::fs::hard_link(from, dest) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => break,
            Err(e) if is_cannot_link(&e) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !from.exists() => {
                return Ok(false);
            }
            // `dest`'s directory is missing: made once, then linked again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !made_parent => {
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
                }
            }
            Err(e) => return Err(StoreError::io(from, e)),
        }
    }
    replace_with_link(from, dest, tmp_dir)
}

/// [`link_atomic`] over an existing `dest`: link under a temp name, then rename, so `dest` is the old file
/// or the new one, never missing.
fn replace_with_link(from: &Path, dest: &Path, tmp_dir: &Path) -> Result<bool> {
    let tmp = tmp_dir.join(format!(
        ".ferry-link-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    match in_dir(tmp_dir, || std::fs::hard_link(from, &tmp)) {
        Ok(()) => {}
        Err(e) if is_cannot_link(&e) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !from.exists() => return Ok(false),
        Err(e) => return Err(StoreError::io(from, e)),
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
    }
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(StoreError::io(dest, e));
    }
    Ok(true)
}

/// `make` something in `dir`, creating `dir` first; again when another process removed the directory in
/// between (a layout's run removes its `ingest/` when it finishes with it empty: `OciLayout::tidy`).
fn in_dir<T>(dir: &Path, make: impl Fn() -> std::io::Result<T>) -> std::io::Result<T> {
    for _ in 0..5 {
        std::fs::create_dir_all(dir)?;
        match make() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => continue,
            result => return result,
        }
    }
    std::fs::create_dir_all(dir)?;
    make()
}

fn is_cannot_link(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), CrossesDevices | Unsupported | PermissionDenied)
        // EMLINK (too many links) and EPERM from filesystems without hard links.
        || matches!(e.raw_os_error(), Some(31) | Some(1))
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos << 20) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that differ at every offset (a chunk out of place shows).
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn chunk_file_writes_every_chunk_in_order_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let want = pattern(3 * CHUNK + 12_345);
        let mut file = ChunkFile::new(std::fs::File::create(&path).unwrap());
        // Chunks of uneven sizes, some larger than a batch, as a network body gives them.
        let mut at = 0;
        for (i, size) in [1, 70_000, CHUNK + 3, 16_384, 5].iter().cycle().enumerate() {
            if at == want.len() {
                break;
            }
            let end = (at + size + i).min(want.len());
            file.write(Bytes::copy_from_slice(&want[at..end]))
                .await
                .unwrap();
            at = end;
        }
        let len = file
            .close_with(|f| f.metadata().unwrap().len())
            .await
            .unwrap();
        assert_eq!(
            len,
            want.len() as u64,
            "the last batch is written before `then` runs"
        );
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[tokio::test]
    async fn file_source_reads_whole_files_and_ranges_through_recycled_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data = pattern(2 * CHUNK + 777);
        std::fs::write(&path, &data).unwrap();
        async fn drain(mut s: FileSource) -> Result<Vec<u8>> {
            let mut out = Vec::new();
            while let Some(chunk) = s.next_chunk().await? {
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        }
        // Twice: the second read gets buffers the first gave back, and must see only its own bytes.
        for _ in 0..2 {
            assert_eq!(
                drain(FileSource::open(&path, 0).await.unwrap())
                    .await
                    .unwrap(),
                data
            );
        }
        let from = CHUNK as u64 - 10;
        let tail = drain(FileSource::open(&path, from).await.unwrap())
            .await
            .unwrap();
        assert_eq!(tail, data[from as usize..]);
        let range = FileSource::range(&path, 5, 100, Path::new("shown.tar"))
            .await
            .unwrap();
        assert_eq!(drain(range).await.unwrap(), data[5..105]);
        // A range past the end of the file is an error naming what the user gave, not a short blob.
        let past = FileSource::range(&path, data.len() as u64 - 50, 100, Path::new("shown.tar"))
            .await
            .unwrap();
        let e = drain(past).await.unwrap_err();
        assert!(e.to_string().contains("shown.tar"), "{e}");
    }

    #[test]
    fn staged_file_and_dir_appear_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub").join("out.tar");
        let staged = StagedFile::beside(&dest).unwrap();
        std::fs::write(staged.path(), b"data").unwrap();
        assert!(!dest.exists(), "invisible until committed");
        assert_eq!(staged.commit().unwrap(), 4);
        assert_eq!(std::fs::read(&dest).unwrap(), b"data");
        drop(StagedFile::beside(&dest).unwrap());
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            1
        );

        let out = dir.path().join("pkg");
        std::fs::create_dir(&out).unwrap(); // an empty directory may be replaced
        let staged = StagedDir::beside(&out).unwrap();
        std::fs::write(staged.path().join("zarf.yaml"), b"x").unwrap();
        staged.commit().unwrap();
        assert_eq!(std::fs::read(out.join("zarf.yaml")).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
        }
        let staged = StagedDir::beside(&out).unwrap();
        let temp = staged.path().to_path_buf();
        std::fs::write(temp.join("a"), b"x").unwrap();
        assert!(
            staged.commit().is_err(),
            "a non-empty directory is not replaced"
        );
        assert!(!temp.exists(), "the staging directory is removed");
    }

    #[test]
    fn links_appear_whole_and_replace_what_is_there() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("blob");
        std::fs::write(&from, b"verified").unwrap();
        let tmp = dir.path().join("tmp");
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        // A free name, in a directory not made yet: one link, no temp name.
        let dest = dir.path().join("a/b/dest");
        assert!(link_atomic(&from, &dest, &tmp).unwrap());
        assert_eq!(ino(&dest), ino(&from));
        assert!(!tmp.exists(), "no temp name needed");
        // A file already there (one that failed verification) is replaced.
        let taken = dir.path().join("taken");
        std::fs::write(&taken, b"corrupt!").unwrap();
        assert!(link_atomic(&from, &taken, &tmp).unwrap());
        assert_eq!(ino(&taken), ino(&from));
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "temp name gone"
        );
        // A source another process removed: the caller streams instead.
        let gone = dir.path().join("gone");
        assert!(!link_atomic(&gone, &dir.path().join("d3"), &tmp).unwrap());
        assert!(!link_atomic(&gone, &taken, &tmp).unwrap());
        assert_eq!(ino(&taken), ino(&from), "left as it was");
    }

    #[tokio::test]
    async fn read_small_caps_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::OciLayout::open_or_create(dir.path()).unwrap();
        let desc = ferry_oci::Descriptor::of("application/octet-stream", b"config bytes");
        std::fs::write(layout.blob_path(&desc.digest), b"config bytes").unwrap();
        assert_eq!(
            &read_small(&layout, &desc, 100).await.unwrap()[..],
            b"config bytes"
        );
        let err = read_small(&layout, &desc, 4).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::TooLarge {
                    size: 12,
                    cap: 4,
                    ..
                }
            ),
            "{err}"
        );
        // A file longer than its descriptor is read only one chunk past it, then refused.
        std::fs::write(layout.blob_path(&desc.digest), vec![b'x'; 3 << 20]).unwrap();
        let err = read_small(&layout, &desc, 100).await.unwrap_err();
        assert!(err.invalidates_partial(), "{err}");
    }
}
