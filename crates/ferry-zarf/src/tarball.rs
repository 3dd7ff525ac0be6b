//! Writing a package directory as one `.tar` or `.tar.zst` file, entries in the order Zarf's archiver walks
//! the directory (names sorted, each directory before its contents), deterministically (mtime 0, owner 0).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use ferry_archive::Compression;

use crate::error::{PackageError, Result};

/// What to write, by the output's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TarKind {
    Tar,
    TarZstd,
}

impl TarKind {
    /// `.tar.zst` / `.tzst` → zstd, `.tar` → plain; anything else is not a package file name.
    pub fn for_path(path: &Path) -> Option<TarKind> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Some(TarKind::TarZstd)
        } else if name.ends_with(".tar") {
            Some(TarKind::Tar)
        } else {
            None
        }
    }
}

/// Write `dir` to `out` (a temp file beside it, renamed when complete). Blocking.
pub fn write(dir: &Path, out: &Path, kind: TarKind) -> Result<u64> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".ferry-")
        .suffix(".partial")
        .tempfile_in(&parent)
        .map_err(|e| PackageError::io(&parent, e))?;
    let file = tmp.reopen().map_err(|e| PackageError::io(tmp.path(), e))?;
    let sink = Sink {
        out: BufWriter::with_capacity(1 << 20, file),
        zstd: kind == TarKind::TarZstd,
        buf: Vec::new(),
        compressible: true,
    };
    let mut tar = tar::Builder::new(sink);
    append_dir(&mut tar, dir, dir)?;
    let file = tar
        .into_inner()
        .and_then(Sink::finish)
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| PackageError::io(out, e))?;
    file.sync_all().map_err(|e| PackageError::io(out, e))?;
    let len = file.metadata().map_err(|e| PackageError::io(out, e))?.len();
    drop(file);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| PackageError::io(tmp.path(), e))?;
    }
    tmp.persist(out)
        .map_err(|e| PackageError::io(out, e.error))?;
    Ok(len)
}

/// Bytes per zstd frame.
const FRAME: usize = 8 << 20;

/// Where the tar goes: as it is, or as a series of zstd frames (every decoder reads concatenated frames as
/// one stream). Image layers are gzip or zstd already, and ruzstd's encoder compresses at 12-40 MB/s, so
/// files that would not shrink go into stored frames (~1 GB/s) and only the rest is compressed.
struct Sink {
    out: BufWriter<File>,
    zstd: bool,
    buf: Vec<u8>,
    compressible: bool,
}

impl Sink {
    /// Whether the bytes that follow are worth compressing; ends the current frame when that changes.
    fn set_compressible(&mut self, compressible: bool) -> std::io::Result<()> {
        if compressible != self.compressible {
            self.emit()?;
            self.compressible = compressible;
        }
        Ok(())
    }

    fn emit(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let level = if self.compressible {
            ruzstd::encoding::CompressionLevel::Fastest
        } else {
            ruzstd::encoding::CompressionLevel::Uncompressed
        };
        let mut drain = Capture {
            inner: &mut self.out,
            error: None,
        };
        ruzstd::encoding::compress(&self.buf[..], &mut drain, level);
        self.buf.clear();
        drain.error.map_or(Ok(()), Err)
    }

    fn finish(mut self) -> std::io::Result<BufWriter<File>> {
        self.emit()?;
        Ok(self.out)
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if !self.zstd {
            return self.out.write(data);
        }
        let take = (FRAME - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == FRAME {
            self.emit()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether a file's bytes are worth compressing: not when they are gzip or zstd already, nor when a sample
/// of them does not shrink (random-looking content). Leaves the file at its start.
fn worth_compressing(f: &mut File) -> std::io::Result<bool> {
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

/// ruzstd panics when its output fails; this keeps the first error for the caller instead.
struct Capture<W: Write> {
    inner: W,
    error: Option<std::io::Error>,
}

impl<W: Write> Write for Capture<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.error.is_none()
            && let Err(e) = self.inner.write_all(buf)
        {
            self.error = Some(e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_dir(tar: &mut tar::Builder<Sink>, root: &Path, dir: &Path) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| PackageError::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| PackageError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .expect("below the root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let meta = std::fs::metadata(&path).map_err(|err| PackageError::io(&path, err))?;
        if meta.is_dir() {
            let mut h = header(tar::EntryType::Directory, 0, 0o755);
            tar.append_data(&mut h, format!("{rel}/"), std::io::empty())
                .map_err(|err| PackageError::io(&path, err))?;
            append_dir(tar, root, &path)?;
        } else {
            let mut f = File::open(&path).map_err(|err| PackageError::io(&path, err))?;
            if tar.get_ref().zstd {
                let compressible =
                    worth_compressing(&mut f).map_err(|err| PackageError::io(&path, err))?;
                tar.get_mut()
                    .set_compressible(compressible)
                    .map_err(|err| PackageError::io(&path, err))?;
            }
            let mut h = header(tar::EntryType::Regular, meta.len(), 0o644);
            tar.append_data(&mut h, &rel, BufReader::with_capacity(1 << 20, f))
                .map_err(|err| PackageError::io(&path, err))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::{Extract, LocalPackage, OpenOptions};

    #[test]
    fn round_trips_in_zarf_order() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg");
        for (rel, data) in [
            ("zarf.yaml", &b"kind: ZarfPackageConfig\n"[..]),
            ("checksums.txt", b"x"),
            ("images/blobs/sha256/ab", b"blob"),
            ("images/index.json", b"{}"),
            ("components/web.tar", b"tar"),
        ] {
            let p = pkg.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        for (name, kind) in [("p.tar", TarKind::Tar), ("p.tar.zst", TarKind::TarZstd)] {
            assert_eq!(TarKind::for_path(Path::new(name)), Some(kind));
            let out = dir.path().join(name);
            write(&pkg, &out, kind).unwrap();
            let opened = LocalPackage::open(
                &out,
                &OpenOptions {
                    extract: Extract::Nothing,
                    hash: true,
                    temp_dir: None,
                    stop_if_layout: false,
                },
            )
            .unwrap();
            assert_eq!(opened.files.len(), 5, "{name}");
            assert_eq!(
                opened.files["images/blobs/sha256/ab"].digest,
                Some(ferry_oci::Digest::of(b"blob"))
            );
        }
        let names: Vec<String> = tar::Archive::new(File::open(dir.path().join("p.tar")).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "checksums.txt",
                "components/",
                "components/web.tar",
                "images/",
                "images/blobs/",
                "images/blobs/sha256/",
                "images/blobs/sha256/ab",
                "images/index.json",
                "zarf.yaml"
            ]
        );
        assert_eq!(TarKind::for_path(Path::new("dir")), None);
    }
}
