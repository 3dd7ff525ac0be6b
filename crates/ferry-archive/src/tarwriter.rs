//! The one tar writer: deterministic entries (mtime 0, owner 0, no user names, fixed modes) into a plain,
//! gzip or zstd file that appears under its name only when complete. OCI archives (`ferry export`, pulls to
//! `oci-archive:`) and Zarf package tarballs are both written here.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use ferry_store::file::StagedFile;

use crate::compress::{Compression, Sink};
use crate::error::{ArchiveError, Result};

/// Mode of directories and of files that may be changed after unpacking.
pub const DIR_MODE: u32 = 0o755;
/// Mode of other files (metadata such as `index.json`), which may be changed after unpacking.
pub const FILE_MODE: u32 = 0o644;
/// Mode of content-addressed blobs: never changed in place.
pub const BLOB_MODE: u32 = 0o444;

/// See the module docs. Dropping it without [`TarWriter::finish`] leaves nothing behind.
pub struct TarWriter {
    tar: tar::Builder<Sink>,
    staged: StagedFile,
    out: PathBuf,
}

impl TarWriter {
    /// Start writing `out`, compressed as `compression` says.
    pub fn create(out: &Path, compression: Compression) -> Result<TarWriter> {
        let staged = StagedFile::beside(out)?;
        let file = staged.reopen()?;
        Ok(TarWriter {
            tar: tar::Builder::new(Sink::new(file, compression)),
            staged,
            out: out.to_path_buf(),
        })
    }

    /// A directory entry; `name` ends with `/`.
    pub fn append_dir(&mut self, name: &str) -> Result<()> {
        let mut h = header(tar::EntryType::Directory, 0, DIR_MODE);
        self.tar
            .append_data(&mut h, name, std::io::empty())
            .map_err(|e| ArchiveError::io(&self.out, e))
    }

    /// A small file from memory.
    pub fn append_bytes(&mut self, name: &str, mode: u32, bytes: &[u8]) -> Result<()> {
        let mut h = header(tar::EntryType::Regular, bytes.len() as u64, mode);
        self.tar
            .get_mut()
            .set_compressible(true)
            .and_then(|_| self.tar.append_data(&mut h, name, bytes))
            .map_err(|e| ArchiveError::io(&self.out, e))
    }

    /// `size` bytes of the file `data` (errors name `from`). Content that does not shrink (gzip or zstd
    /// layers, random-looking data) is stored rather than compressed again.
    pub fn append_file(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        data: &mut File,
        from: &Path,
    ) -> Result<()> {
        let compressible = worth_compressing(data).map_err(|e| ArchiveError::io(from, e))?;
        let mut body = std::io::BufReader::with_capacity(1 << 20, data);
        self.append_reader(name, mode, size, &mut body, compressible, from)
    }

    /// `size` bytes read from `data`; the caller has checked whether they are `compressible`
    /// ([`worth_compressing`]). A reader that ends early fails the entry (and so the archive).
    pub fn append_reader(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        data: &mut dyn Read,
        compressible: bool,
        from: &Path,
    ) -> Result<()> {
        self.tar
            .get_mut()
            .set_compressible(compressible)
            .map_err(|e| ArchiveError::io(&self.out, e))?;
        let mut h = header(tar::EntryType::Regular, size, mode);
        let mut body = ExactReader {
            inner: data.take(size),
            left: size,
        };
        self.tar
            .append_data(&mut h, name, &mut body)
            .map_err(|e| ArchiveError::io(from, e))
    }

    /// Finish the stream, sync, and rename the file into place; returns its size on disk.
    pub fn finish(self) -> Result<u64> {
        let out = self.out;
        self.tar
            .into_inner()
            .and_then(Sink::finish)
            .map_err(|e| ArchiveError::io(&out, e))?;
        Ok(self.staged.commit()?)
    }
}

/// Fails instead of ending early: a file that shrank while being archived must not leave an entry shorter
/// than its header says.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("ended {} bytes early (changed while archiving?)", self.left),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Whether a file's bytes are worth compressing: not when they are gzip or zstd already, nor when a sample
/// of them does not shrink (random-looking content). Leaves the file at its start.
pub fn worth_compressing(f: &mut File) -> std::io::Result<bool> {
    const SAMPLE: u64 = 64 << 10;
    let mut sample = Vec::with_capacity(SAMPLE as usize);
    (&mut *f).take(SAMPLE).read_to_end(&mut sample)?;
    f.seek(std::io::SeekFrom::Start(0))?;
    if Compression::of_bytes(&sample) != Compression::None {
        return Ok(false);
    }
    if sample.len() < SAMPLE as usize {
        return Ok(true);
    }
    let packed =
        ruzstd::encoding::compress_to_vec(&sample[..], ruzstd::encoding::CompressionLevel::Fastest);
    Ok(packed.len() < sample.len() * 9 / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_bytes_and_nothing_left_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("data");
        std::fs::write(&src, b"payload".repeat(20_000)).unwrap();
        let write = |out: &Path| {
            let mut w = TarWriter::create(out, Compression::for_path(out)).unwrap();
            w.append_bytes("meta", FILE_MODE, b"{}").unwrap();
            w.append_dir("d/").unwrap();
            let mut f = File::open(&src).unwrap();
            let size = f.metadata().unwrap().len();
            w.append_file("d/data", BLOB_MODE, size, &mut f, &src)
                .unwrap();
            w.finish().unwrap()
        };
        for name in ["a.tar", "a.tar.gz", "a.tar.zst"] {
            let (a, b) = (dir.path().join(name), dir.path().join(format!("b-{name}")));
            assert_eq!(write(&a), write(&b));
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        }
        // Dropped before finish: no file under the name, no temp file beside it.
        let before = std::fs::read_dir(dir.path()).unwrap().count();
        let w = TarWriter::create(&dir.path().join("never.tar"), Compression::None).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before);
    }
}
