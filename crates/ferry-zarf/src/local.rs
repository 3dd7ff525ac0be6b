//! A package on disk: a directory, or a `.tar` / `.tar.zst` / `.tar.gz` tarball, read in one pass.
//!
//! Every file is hashed as it goes by (that pass is the verification). A directory is used in place and a
//! plain tar by byte ranges, so neither is ever unpacked. A compressed tarball cannot be read at an offset,
//! and a copy reads blobs in graph order, not archive order (Zarf's tar has `images/blobs/…` before
//! `images/index.json`), so the files a command needs later are unpacked to a temp directory during the same
//! pass — `images/` for a push, everything for a publish, nothing for inspect and verify.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ferry_archive::{Compression, EntryKind, TarEntries};
use ferry_oci::{Digest, Hasher};

use crate::checksums::{self, Integrity};
use crate::definition::Definition;
use crate::error::{PackageError, Result};
use crate::{CHECKSUMS, IMAGES_INDEX, IMAGES_LAYOUT, ZARF_YAML};

/// What a package file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// An unpacked package directory.
    Directory,
    /// An uncompressed tarball, read in place.
    Tar,
    /// A zstd tarball (Zarf's default package format).
    #[serde(rename = "tar.zst")]
    TarZstd,
    /// A gzip tarball.
    #[serde(rename = "tar.gz")]
    TarGzip,
}

impl Format {
    /// `directory`, `tar`, `tar.zst` or `tar.gz`, for messages and output.
    pub fn name(self) -> &'static str {
        match self {
            Format::Directory => "directory",
            Format::Tar => "tar",
            Format::TarZstd => "tar.zst",
            Format::TarGzip => "tar.gz",
        }
    }
}

/// Which files of a compressed tarball to unpack while reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extract {
    /// Only the metadata files, kept in memory (what inspect and verify need).
    Nothing,
    /// `images/`: what a push reads.
    Images,
    /// Every file: what a publish sends.
    Everything,
}

/// How [`LocalPackage::open`] reads a package.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Which files of a compressed tarball to unpack.
    pub extract: Extract,
    /// Hash every file (needed to verify; a push with `--skip-verify` does without).
    pub hash: bool,
    /// Where unpacked files go; default: beside the package, else the system temp directory.
    pub temp_dir: Option<PathBuf>,
    /// Give up at once with [`PackageError::NotAPackage`] when the archive starts like an OCI layout
    /// archive (`oci-layout`, `index.json` or `blobs/` at its root), which no Zarf package does.
    pub stop_if_layout: bool,
}

/// Where a file's bytes can be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A file on disk, read whole.
    Path(PathBuf),
    /// `size` bytes at `offset` of an uncompressed tar file.
    Range {
        /// The uncompressed tar file.
        file: PathBuf,
        /// Where the file's data starts in it.
        offset: u64,
    },
    /// Kept in memory while streaming (metadata, small JSON blobs).
    Memory,
    /// In a compressed tarball and not unpacked.
    Packed,
}

/// One file of a package.
#[derive(Clone, Debug)]
pub struct FileEntry {
    /// Its length in bytes.
    pub size: u64,
    /// sha256 of the content, when hashed.
    pub digest: Option<Digest>,
    /// Where its bytes can be read.
    pub location: Location,
}

/// A package read from disk; see the module docs.
pub struct LocalPackage {
    /// The package as given (a directory or a tarball).
    pub path: PathBuf,
    /// What it is.
    pub format: Format,
    /// Every regular file, by its path relative to the package root (`/`-separated).
    pub files: BTreeMap<String, FileEntry>,
    memory: HashMap<String, Bytes>,
    /// Unpacked files; removed when the last user of the package is gone.
    temp: Option<Arc<tempfile::TempDir>>,
}

/// Files read into memory whatever else happens: small, and needed by every command.
const METADATA: [&str; 4] = [ZARF_YAML, CHECKSUMS, IMAGES_INDEX, IMAGES_LAYOUT];
/// The largest metadata file kept in memory.
const MAX_METADATA: u64 = 16 << 20;
/// Image manifests and configs (JSON blobs up to this size) are kept from a compressed tarball that is not
/// unpacked, so `inspect` can size images without a temp copy; at most this much in all.
const SMALL_JSON: u64 = 256 << 10;
const SMALL_JSON_BUDGET: u64 = 64 << 20;
const CHUNK: usize = 1 << 20;

impl LocalPackage {
    /// Read the package at `path`. Blocking: call it from `spawn_blocking` in async code.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<LocalPackage> {
        let meta = std::fs::metadata(path).map_err(|e| PackageError::io(path, e))?;
        if meta.is_dir() {
            return Self::open_dir(path, opts);
        }
        let format = match Compression::sniff(path)
            .map_err(|e| PackageError::invalid(path.display(), e.to_string()))?
        {
            Compression::None => Format::Tar,
            Compression::Zstd => Format::TarZstd,
            Compression::Gzip => Format::TarGzip,
        };
        let mut pkg = LocalPackage {
            path: path.to_path_buf(),
            format,
            files: BTreeMap::new(),
            memory: HashMap::new(),
            temp: None,
        };
        pkg.scan_tar(opts)?;
        if pkg.files.is_empty() {
            return Err(PackageError::invalid(
                path.display(),
                "empty archive: not a Zarf package",
            ));
        }
        Ok(pkg)
    }

    /// The package's path, for messages.
    pub fn label(&self) -> String {
        self.path.display().to_string()
    }

    /// The `images/` OCI layout as a directory, if there is one on disk (a package directory, or unpacked).
    pub fn images_dir(&self) -> Option<PathBuf> {
        let root = match self.format {
            Format::Directory => self.path.clone(),
            _ => self.temp.as_ref()?.path().to_path_buf(),
        };
        let dir = root.join("images");
        dir.join("oci-layout").is_file().then_some(dir)
    }

    /// Keeps the unpacked files alive for as long as the holder needs them.
    pub fn temp(&self) -> Option<Arc<tempfile::TempDir>> {
        self.temp.clone()
    }

    /// The content of `rel`, or `None` when the package has no such file; refuses files over `cap` bytes.
    pub fn read(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.files.get(rel) else {
            return Ok(None);
        };
        if entry.size > cap {
            return Err(PackageError::file(
                self.label(),
                rel,
                format!(
                    "{} bytes, more than the {cap}-byte limit for this file",
                    entry.size
                ),
            ));
        }
        let bytes = match &entry.location {
            Location::Memory => self.memory.get(rel).map(|b| b.to_vec()).unwrap_or_default(),
            Location::Path(p) => std::fs::read(p).map_err(|e| PackageError::io(p, e))?,
            Location::Range { file, offset } => {
                let mut f = File::open(file).map_err(|e| PackageError::io(file, e))?;
                let mut buf = vec![0u8; entry.size as usize];
                f.seek(SeekFrom::Start(*offset))
                    .and_then(|_| f.read_exact(&mut buf))
                    .map_err(|e| {
                        PackageError::file(self.label(), rel, format!("cannot read: {e}"))
                    })?;
                buf
            }
            Location::Packed => {
                return Err(PackageError::file(
                    self.label(),
                    rel,
                    "not unpacked from the compressed tarball",
                ));
            }
        };
        Ok(Some(bytes))
    }

    /// `zarf.yaml`, parsed; `None` when the package has none (a bare `images/` layout in a directory).
    pub fn definition(&self) -> Result<Option<Definition>> {
        match self.read(ZARF_YAML, crate::definition::MAX_ZARF_YAML)? {
            Some(bytes) => Definition::parse(&self.label(), &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Check every file against `checksums.txt` and the aggregate in `zarf.yaml` (files that were not hashed
    /// are only checked for presence).
    pub fn integrity(&self, definition: &Definition, partial: bool) -> Result<Integrity> {
        let listed: BTreeMap<String, Option<Digest>> = self
            .files
            .iter()
            .map(|(k, v)| (k.clone(), v.digest.clone()))
            .collect();
        let checksums = self.read(CHECKSUMS, MAX_METADATA)?;
        Ok(checksums::verify(
            &listed,
            checksums.as_deref(),
            &definition.metadata.aggregate_checksum,
            &definition.provenance_files(self.files.contains_key(crate::SIGNATURES[1])),
            partial,
        ))
    }

    fn open_dir(path: &Path, opts: &OpenOptions) -> Result<LocalPackage> {
        let mut files = BTreeMap::new();
        walk(path, path, &mut |rel, full, size| {
            let Some(size) = size else {
                return Ok(());
            };
            let digest = if opts.hash {
                Some(hash_file(full)?)
            } else {
                None
            };
            files.insert(
                rel,
                FileEntry {
                    size,
                    digest,
                    location: Location::Path(full.to_path_buf()),
                },
            );
            Ok(())
        })?;
        Ok(LocalPackage {
            path: path.to_path_buf(),
            format: Format::Directory,
            files,
            memory: HashMap::new(),
            temp: None,
        })
    }

    /// One pass over the tar with the one tar reader: hash, keep metadata, and either remember byte ranges
    /// (a plain tar, served in place later) or unpack what `opts.extract` asks for (a compressed one).
    fn scan_tar(&mut self, opts: &OpenOptions) -> Result<()> {
        let label = self.label();
        let plain = self.format == Format::Tar;
        let mut entries = if plain {
            TarEntries::file(&self.path, &self.path)?
        } else {
            TarEntries::stream(Compression::open(&self.path)?, &self.path)
        };
        let mut json_budget = SMALL_JSON_BUDGET;
        while let Some(entry) = entries.next_entry()? {
            let rel = match entry.kind {
                EntryKind::Directory => continue,
                EntryKind::File => entry.path,
                other => {
                    return Err(PackageError::file(
                        &label,
                        &entry.path,
                        format!(
                            "{} entries are not supported in a Zarf package (only files and directories)",
                            match other {
                                EntryKind::Link(_) => "link".to_string(),
                                EntryKind::Other(t) => format!("{t:?}"),
                                _ => unreachable!("files and directories handled above"),
                            }
                        ),
                    ));
                }
            };
            if opts.stop_if_layout && self.files.is_empty() && starts_a_layout(&rel) {
                return Err(PackageError::NotAPackage {
                    package: label,
                    why: format!("it starts with {rel}, as an OCI layout archive does"),
                });
            }
            let size = entry.size;
            let metadata = METADATA.contains(&rel.as_str());
            let unpack = !plain
                && match opts.extract {
                    Extract::Nothing => false,
                    Extract::Images => rel.starts_with("images/"),
                    Extract::Everything => true,
                };
            let keep = (metadata && size <= MAX_METADATA)
                || (!plain
                    && !unpack
                    && rel.starts_with("images/blobs/")
                    && size <= SMALL_JSON
                    && size <= json_budget);
            let mut kept: Vec<u8> = Vec::new();
            let mut out: Option<(File, PathBuf)> = None;
            if unpack {
                let dest = self.temp_root(opts)?.join(&rel);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| PackageError::io(parent, e))?;
                }
                let f = File::create(&dest).map_err(|e| PackageError::io(&dest, e))?;
                out = Some((f, dest));
            }
            let digest = if opts.hash || keep || unpack {
                let mut tee = Tee {
                    keep: keep.then_some(&mut kept),
                    file: out.as_mut().map(|(f, p)| (f, p.as_path())),
                };
                let (digest, n) =
                    copy_hashing(&mut entries.data(), Some(&mut tee)).map_err(|e| {
                        match e.kind() {
                            std::io::ErrorKind::StorageFull => PackageError::io(
                                out.as_ref().map_or(Path::new("temp"), |(_, p)| p.as_path()),
                                e,
                            ),
                            _ => PackageError::file(&label, &rel, format!("cannot read: {e}")),
                        }
                    })?;
                check_length(&label, &rel, n, size)?;
                Some(digest)
            } else {
                None
            };
            // Only JSON blobs are worth keeping: image manifests and configs.
            let keep = keep && (metadata || kept.first() == Some(&b'{'));
            // Not synced: a temp copy that dies with the process needs no durability, and an fsync per
            // file doubled the time a .tar.zst push spends unpacking.
            let location = if plain {
                Location::Range {
                    file: self.path.clone(),
                    offset: entry.offset,
                }
            } else if let Some((_, dest)) = out {
                Location::Path(dest)
            } else if keep {
                Location::Memory
            } else {
                Location::Packed
            };
            if keep {
                if !metadata {
                    json_budget -= size;
                }
                self.memory.insert(rel.clone(), Bytes::from(kept));
            }
            self.insert(
                &label,
                rel,
                FileEntry {
                    size,
                    digest: digest.filter(|_| opts.hash),
                    location,
                },
            )?;
        }
        Ok(())
    }

    fn insert(&mut self, label: &str, rel: String, entry: FileEntry) -> Result<()> {
        if self.files.contains_key(&rel) {
            return Err(PackageError::file(
                label,
                &rel,
                "appears twice in the archive",
            ));
        }
        self.files.insert(rel, entry);
        Ok(())
    }

    fn temp_root(&mut self, opts: &OpenOptions) -> Result<PathBuf> {
        if let Some(t) = &self.temp {
            return Ok(t.path().to_path_buf());
        }
        let t = Arc::new(temp_dir_near(&self.path, opts.temp_dir.as_deref())?);
        let p = t.path().to_path_buf();
        self.temp = Some(t);
        Ok(p)
    }
}

/// A temp directory in `preferred`, else beside `near` (on disk, where the package is), else the system
/// temp directory (a read-only medium holding the package).
pub fn temp_dir_near(near: &Path, preferred: Option<&Path>) -> Result<tempfile::TempDir> {
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix(".ferry-package-");
        b
    };
    if let Some(dir) = preferred {
        return builder()
            .tempdir_in(dir)
            .map_err(|e| PackageError::io(dir, e));
    }
    let parent = match near.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    builder()
        .tempdir_in(&parent)
        .or_else(|_| builder().tempdir())
        .map_err(|e| PackageError::io(&parent, e))
}

/// Writes into what is kept in memory and/or an unpacked file.
struct Tee<'a> {
    keep: Option<&'a mut Vec<u8>>,
    file: Option<(&'a mut File, &'a Path)>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(k) = self.keep.as_deref_mut() {
            k.extend_from_slice(buf);
        }
        if let Some((f, _)) = self.file.as_mut() {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Read `r` to its end, hashing, optionally writing a copy; returns the digest and the length.
fn copy_hashing(
    r: &mut dyn Read,
    mut copy: Option<&mut dyn Write>,
) -> std::io::Result<(Digest, u64)> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        if let Some(w) = copy.as_deref_mut() {
            w.write_all(&buf[..n])?;
        }
    }
    let len = h.len();
    Ok((h.finish(), len))
}

/// Root entries of an OCI layout archive; a Zarf package keeps its layout under `images/`.
fn starts_a_layout(rel: &str) -> bool {
    rel == "oci-layout" || rel == "index.json" || rel.starts_with("blobs/")
}

fn check_length(label: &str, rel: &str, got: u64, size: u64) -> Result<()> {
    if got != size {
        return Err(PackageError::file(
            label,
            rel,
            format!("truncated: {got} of {size} bytes (the archive ends early)"),
        ));
    }
    Ok(())
}

/// What [`walk`] calls with each thing it finds: its relative name, its path, its size (None: a directory).
pub(crate) type Visit<'a> = dyn FnMut(String, &Path, Option<u64>) -> Result<()> + 'a;

/// Every directory (`size` None, before its contents) and regular file under `root`, names sorted as
/// Zarf's archiver walks them, with paths relative to `root` joined by `/`. Symlinks to files count;
/// symlinked directories are not followed (they could lead out of the package, or in circles).
pub(crate) fn walk(root: &Path, dir: &Path, visit: &mut Visit) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| PackageError::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| PackageError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .expect("walked below the root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let kind = e.file_type().map_err(|err| PackageError::io(&path, err))?;
        if kind.is_dir() {
            visit(rel, &path, None)?;
            walk(root, &path, visit)?;
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|err| PackageError::io(&path, err))?;
        if meta.is_file() {
            visit(rel, &path, Some(meta.len()))?;
        }
    }
    Ok(())
}

/// sha256 of a file.
pub fn hash_file(path: &Path) -> Result<Digest> {
    let mut f = File::open(path).map_err(|e| PackageError::io(path, e))?;
    copy_hashing(&mut f, None)
        .map(|(d, _)| d)
        .map_err(|e| PackageError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn opts(extract: Extract) -> OpenOptions {
        OpenOptions {
            extract,
            hash: true,
            temp_dir: None,
            stop_if_layout: false,
        }
    }

    #[test]
    fn plain_tar_is_served_by_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.tar");
        std::fs::write(
            &p,
            tar_of(&[
                ("./zarf.yaml", b"kind: x\n"),
                ("images/blobs/sha256/ab", b"blob"),
            ]),
        )
        .unwrap();
        let pkg = LocalPackage::open(&p, &opts(Extract::Everything)).unwrap();
        assert_eq!(pkg.format, Format::Tar);
        let blob = &pkg.files["images/blobs/sha256/ab"];
        assert!(matches!(blob.location, Location::Range { .. }));
        assert_eq!(blob.digest, Some(Digest::of(b"blob")));
        assert_eq!(
            pkg.read("images/blobs/sha256/ab", 10).unwrap().unwrap(),
            b"blob"
        );
        assert_eq!(pkg.read("zarf.yaml", 100).unwrap().unwrap(), b"kind: x\n");
        assert!(pkg.read("nope", 10).unwrap().is_none());
        assert!(pkg.temp().is_none(), "nothing unpacked");
    }

    #[test]
    fn zstd_tar_is_streamed_and_unpacks_only_what_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.tar.zst");
        let tar = tar_of(&[
            ("components/a.tar", b"component"),
            ("images/blobs/sha256/aa", b"{\"schemaVersion\":2}"),
            ("images/blobs/sha256/bb", b"layer bytes"),
            ("images/index.json", b"{}"),
            ("zarf.yaml", b"kind: x\n"),
        ]);
        let zst = ruzstd::encoding::compress_to_vec(
            &tar[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        std::fs::write(&p, zst).unwrap();

        let pkg = LocalPackage::open(&p, &opts(Extract::Nothing)).unwrap();
        assert_eq!(pkg.format, Format::TarZstd);
        assert!(pkg.temp().is_none());
        assert_eq!(
            pkg.files["images/blobs/sha256/aa"].location,
            Location::Memory,
            "small JSON kept"
        );
        assert_eq!(
            pkg.files["images/blobs/sha256/bb"].location,
            Location::Packed
        );
        assert_eq!(
            pkg.files["components/a.tar"].digest,
            Some(Digest::of(b"component"))
        );
        assert!(pkg.read("images/blobs/sha256/bb", 100).is_err());

        let pkg = LocalPackage::open(&p, &opts(Extract::Images)).unwrap();
        let temp = pkg.temp().unwrap();
        assert!(
            temp.path().starts_with(dir.path()),
            "unpacked beside the package"
        );
        assert_eq!(
            std::fs::read(temp.path().join("images/blobs/sha256/bb")).unwrap(),
            b"layer bytes"
        );
        assert!(!temp.path().join("components").exists());
        assert_eq!(pkg.files["components/a.tar"].location, Location::Packed);
        let t = temp.path().to_path_buf();
        drop((pkg, temp));
        assert!(!t.exists(), "the temp copy goes with the package");

        // Cut short: the error names the package.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let err = LocalPackage::open(&p, &opts(Extract::Nothing))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("p.tar.zst"), "{err}");
    }

    #[test]
    fn refuses_escaping_paths_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.tar");
        let mut raw = tar_of(&[("ok", b"1")]);
        // Overwrite the name field of the header with an escaping path (tar::Builder refuses to write one).
        raw[..100].fill(0);
        raw[..6].copy_from_slice(b"../bad");
        let mut h = tar::Header::from_byte_slice(&raw[..512]).clone();
        h.set_cksum();
        raw[..512].copy_from_slice(h.as_bytes());
        std::fs::write(&p, &raw).unwrap();
        let err = LocalPackage::open(&p, &opts(Extract::Nothing))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("p.tar") && err.contains("../bad") && err.contains(".."),
            "{err}"
        );
    }
}
