//! Local files as byte sources and as atomically committed blob writers.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

use crate::{BlobWriter, BoxFuture, ByteSource, Result, StoreError};

const CHUNK: usize = 1 << 20;

/// Reads a file (or a byte range of one) in 1 MiB chunks.
pub struct FileSource {
    file: tokio::fs::File,
    /// The name errors give: the file itself, or the archive it was unpacked from.
    path: PathBuf,
    /// Bytes left of a range; `None` reads to the end of the file.
    remaining: Option<u64>,
}

impl FileSource {
    pub async fn open(path: &Path, offset: u64) -> Result<FileSource> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| StoreError::io(path, e))?;
        if offset > 0 {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| StoreError::io(path, e))?;
        }
        Ok(FileSource {
            file,
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
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                let n = (&mut self.file)
                    .take((want - buf.len()) as u64)
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| StoreError::io(&self.path, e))?;
                if n == 0 {
                    break;
                }
            }
            if let Some(r) = &mut self.remaining {
                if buf.len() < want {
                    return Err(StoreError::io(
                        &self.path,
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "ends early: truncated or changed while reading",
                        ),
                    ));
                }
                *r -= buf.len() as u64;
            }
            Ok(if buf.is_empty() {
                None
            } else {
                Some(buf.freeze())
            })
        })
    }
}

/// Writes a blob to a temp file in `tmp_dir` and renames it to `dest` on commit, read-only, so a reader
/// sees either nothing or the whole verified blob.
pub struct AtomicFileWriter {
    temp: tempfile::TempPath,
    file: BufWriter<tokio::fs::File>,
    dest: PathBuf,
    durable: bool,
}

impl AtomicFileWriter {
    /// `durable` fsyncs the data before the rename: for long-lived stores (the cache) where a crash must not
    /// leave a torn file under a digest name.
    pub async fn create(tmp_dir: &Path, dest: PathBuf, durable: bool) -> Result<AtomicFileWriter> {
        tokio::fs::create_dir_all(tmp_dir)
            .await
            .map_err(|e| StoreError::io(tmp_dir, e))?;
        let named = tempfile::Builder::new()
            .prefix(".ferry-")
            .tempfile_in(tmp_dir)
            .map_err(|e| StoreError::io(tmp_dir, e))?;
        let (std_file, temp) = named.into_parts();
        Ok(AtomicFileWriter {
            temp,
            file: BufWriter::with_capacity(CHUNK, tokio::fs::File::from_std(std_file)),
            dest,
            durable,
        })
    }
}

impl BlobWriter for AtomicFileWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.file
                .write_all(&chunk)
                .await
                .map_err(|e| StoreError::io(&*self.temp, e))
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let AtomicFileWriter {
                temp,
                mut file,
                dest,
                durable,
            } = *self;
            file.flush().await.map_err(|e| StoreError::io(&*temp, e))?;
            let file = file.into_inner().into_std().await;
            tokio::task::spawn_blocking(move || commit_file(file, temp, &dest, durable))
                .await
                .expect("commit task panicked")
        })
    }
}

fn commit_file(
    file: std::fs::File,
    temp: tempfile::TempPath,
    dest: &Path,
    durable: bool,
) -> Result<()> {
    if durable {
        file.sync_data().map_err(|e| StoreError::io(&*temp, e))?;
    }
    set_read_only(&temp)?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
    }
    temp.persist(dest)
        .map_err(|e| StoreError::io(dest, e.error))?;
    Ok(())
}

/// Blobs are immutable: mode 0444, as Zarf and oras write them.
pub fn set_read_only(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444))
            .map_err(|e| StoreError::io(path, e))?;
    }
    #[cfg(not(unix))]
    {
        let mut p = std::fs::metadata(path)
            .map_err(|e| StoreError::io(path, e))?
            .permissions();
        p.set_readonly(true);
        std::fs::set_permissions(path, p).map_err(|e| StoreError::io(path, e))?;
    }
    Ok(())
}

/// Write `bytes` to `dest` atomically (temp file in the same directory, then rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".ferry-")
        .tempfile_in(dir)
        .map_err(|e| StoreError::io(dir, e))?;
    use std::io::Write;
    tmp.write_all(bytes)
        .map_err(|e| StoreError::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_data()
        .map_err(|e| StoreError::io(tmp.path(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| StoreError::io(tmp.path(), e))?;
    }
    tmp.persist(dest)
        .map_err(|e| StoreError::io(dest, e.error))?;
    Ok(())
}

/// Hard-link `from` to `dest` atomically (link under a temp name, then rename), so `dest` never
/// appears half made. `Ok(false)` when the filesystem cannot link (another device, no support).
pub fn link_atomic(from: &Path, dest: &Path, tmp_dir: &Path) -> Result<bool> {
    std::fs::create_dir_all(tmp_dir).map_err(|e| StoreError::io(tmp_dir, e))?;
    let tmp = tmp_dir.join(format!(
        ".ferry-link-{}-{}",
        std::process::id(),
        unique_suffix()
    ));
    match std::fs::hard_link(from, &tmp) {
        Ok(()) => {}
        Err(e) if is_cannot_link(&e) => return Ok(false),
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
