//! One pass over a seekable tar file: every regular file's name → where its bytes are (offset, size), so
//! a blob is later served by reading that byte range. Nothing is extracted and no entry's data is read
//! while indexing; only headers are.
//!
//! The header walk is ours (the `tar` crate parses each header) rather than `tar::Archive`, because the
//! crate reads PAX records and GNU long names of any declared size into memory, and an archive is
//! untrusted input: here they are capped.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{ArchiveError, Result};

/// manifest.json, index.json, image configs and manifests: what ferry reads into memory from an archive.
pub const MAX_METADATA_BYTES: u64 = 4 << 20;
/// PAX records and GNU long names: a path is never this long.
const MAX_EXTENSION_BYTES: u64 = 64 << 10;
const BLOCK: u64 = 512;
/// Image archives have a few entries per layer; millions of them would only grow the index.
const MAX_ENTRIES: usize = 1 << 20;
/// Symlink chains longer than this are treated as loops.
const MAX_LINK_HOPS: usize = 16;

/// Where an entry's bytes are in the tar file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub offset: u64,
    pub size: u64,
}

#[derive(Clone, Debug)]
enum Node {
    File(Span),
    /// A symlink or hard link, as an archive path (already checked to stay inside the archive).
    Link(String),
}

#[derive(Debug)]
pub struct TarIndex {
    /// The file read: the archive itself, or its decompressed temp copy.
    file: PathBuf,
    /// The archive as the user named it, for messages.
    archive: PathBuf,
    files: HashMap<String, Span>,
}

impl TarIndex {
    /// Index `file` (an uncompressed tar). Errors name `archive`.
    pub fn scan(file: &Path, archive: &Path) -> Result<TarIndex> {
        let mut entries = TarEntries::file(file, archive)?;
        let mut nodes: HashMap<String, Node> = HashMap::new();
        while let Some(entry) = entries.next_entry()? {
            match entry.kind {
                EntryKind::File => {
                    let span = Span {
                        offset: entry.offset,
                        size: entry.size,
                    };
                    nodes.insert(entry.path, Node::File(span));
                }
                EntryKind::Link(target) => {
                    nodes.insert(entry.path, Node::Link(target));
                }
                // Directories, devices, fifos: nothing to serve.
                EntryKind::Directory | EntryKind::Other(_) => {
                    nodes.remove(&entry.path);
                }
            }
        }
        let files = resolve_links(nodes);
        Ok(TarIndex {
            file: file.to_path_buf(),
            archive: archive.to_path_buf(),
            files,
        })
    }

    /// The archive as the user named it.
    pub fn archive(&self) -> &Path {
        &self.archive
    }

    /// The file whose byte ranges [`Span`]s are.
    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn get(&self, name: &str) -> Option<Span> {
        self.files.get(name).copied()
    }

    /// When every file sits under one top-level directory, make that directory the root (a tarball made
    /// with `tar -cf x.tar dir/`, which Zarf accepts for `imageArchives`). Returns the directory stripped.
    pub fn strip_single_root(&mut self) -> Option<String> {
        let first = self.files.keys().next()?.split_once('/')?.0.to_string();
        let prefix = format!("{first}/");
        if !self.files.keys().all(|k| k.starts_with(&prefix)) {
            return None;
        }
        self.files = std::mem::take(&mut self.files)
            .into_iter()
            .map(|(k, v)| (k[prefix.len()..].to_string(), v))
            .collect();
        Some(first)
    }

    /// Every regular file (and link resolved to one), by normalized name.
    pub fn files(&self) -> impl Iterator<Item = (&str, Span)> {
        self.files.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Read a metadata entry (at most [`MAX_METADATA_BYTES`]) into memory.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let span = self
            .get(name)
            .ok_or_else(|| ArchiveError::entry(&self.archive, name, "missing from the archive"))?;
        self.read_span(name, span, MAX_METADATA_BYTES)
    }

    /// Read `span` (of the entry `name`, for messages) into memory, refusing more than `cap` bytes.
    pub fn read_span(&self, name: &str, span: Span, cap: u64) -> Result<Vec<u8>> {
        if span.size > cap {
            return Err(ArchiveError::entry(
                &self.archive,
                name,
                format!(
                    "{} bytes, more than the {cap}-byte limit for metadata files",
                    span.size
                ),
            ));
        }
        let mut f = File::open(&self.file).map_err(|e| ArchiveError::io(&self.archive, e))?;
        let mut buf = vec![0u8; span.size as usize];
        f.seek(SeekFrom::Start(span.offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| ArchiveError::entry(&self.archive, name, format!("cannot read: {e}")))?;
        Ok(buf)
    }

    /// A reader over `span`'s bytes (for hashing a layer without holding it).
    pub fn open_span(&self, span: Span) -> Result<std::io::Take<File>> {
        let mut f = File::open(&self.file).map_err(|e| ArchiveError::io(&self.archive, e))?;
        f.seek(SeekFrom::Start(span.offset))
            .map_err(|e| ArchiveError::io(&self.archive, e))?;
        Ok(f.take(span.size))
    }
}

/// One entry of a tar, as [`TarEntries`] yields it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarEntry {
    /// The normalized archive path (`./a//b` → `a/b`).
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// Where the entry's data starts in the (uncompressed) tar.
    pub offset: u64,
    /// Length of the entry's data in bytes.
    pub size: u64,
}

/// What a [`TarEntry`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symlink or hard link, resolved to the archive path it reaches (checked to stay inside).
    Link(String),
    /// Devices, fifos and the like.
    Other(tar::EntryType),
}

enum Input {
    /// Entry data is skipped by seeking.
    File(File),
    /// Entry data is skipped by reading past it.
    Stream(Box<dyn Read + Send>),
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Input::File(f) => f.read(buf),
            Input::Stream(r) => r.read(buf),
        }
    }
}

/// The one tar walk, over a file or a stream (a tar being decompressed): each header parsed and checked
/// (checksum, size within the file, PAX records and GNU long names capped, paths normalized, links kept
/// inside the archive), one entry at a time. The caller may read an entry's data with
/// [`TarEntries::data`] before asking for the next; what it does not read is skipped.
pub struct TarEntries {
    input: Input,
    archive: PathBuf,
    /// The tar's length when known (a file): an entry claiming more is truncated.
    len: Option<u64>,
    /// Where `input` is.
    pos: u64,
    /// Data of the current entry not read yet, then its padding to the next block.
    data_left: u64,
    padding: u64,
    entries: usize,
    last_entry: Option<String>,
    done: bool,
}

impl TarEntries {
    /// Walk an uncompressed tar file. Errors name `archive` (the file the user gave).
    pub fn file(file: &Path, archive: &Path) -> Result<TarEntries> {
        let f = File::open(file).map_err(|e| ArchiveError::io(archive, e))?;
        let len = f
            .metadata()
            .map_err(|e| ArchiveError::io(archive, e))?
            .len();
        Ok(Self::new(Input::File(f), archive, Some(len)))
    }

    /// Walk a tar read as a stream (e.g. [`crate::Compression::open`]).
    pub fn stream(reader: Box<dyn Read + Send>, archive: &Path) -> TarEntries {
        Self::new(Input::Stream(reader), archive, None)
    }

    fn new(input: Input, archive: &Path, len: Option<u64>) -> TarEntries {
        TarEntries {
            input,
            archive: archive.to_path_buf(),
            len,
            pos: 0,
            data_left: 0,
            padding: 0,
            entries: 0,
            last_entry: None,
            done: false,
        }
    }

    /// The data of the entry [`TarEntries::next_entry`] returned last (what is left of it).
    pub fn data(&mut self) -> impl Read + '_ {
        EntryData { walk: self }
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        match &mut self.input {
            Input::File(f) => {
                f.seek(SeekFrom::Current(n as i64))?;
            }
            Input::Stream(r) => {
                let skipped = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
                if skipped < n {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
        self.pos += n;
        Ok(())
    }

    fn read_full(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut read = 0;
        while read < buf.len() {
            match self.input.read(&mut buf[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pos += read as u64;
        Ok(read)
    }

    /// The next file, directory, link or other entry; `None` at the end-of-archive marker. An archive that
    /// stops without one, or whose entry is cut short, is an error naming the entry.
    pub fn next_entry(&mut self) -> Result<Option<TarEntry>> {
        if self.done {
            return Ok(None);
        }
        let archive = self.archive.clone();
        let rest = self.data_left + self.padding;
        self.data_left = 0;
        self.padding = 0;
        self.skip(rest).map_err(|e| self.cut_short(e))?;
        let mut pending = Pending::default();
        loop {
            let pos = self.pos;
            let mut block = [0u8; BLOCK as usize];
            let n = self.read_full(&mut block).map_err(|e| self.read_error(e))?;
            if n == 0 {
                // Every tar writer ends with zero blocks; a file that simply stops was cut short.
                return Err(ArchiveError::invalid(
                    &archive,
                    match &self.last_entry {
                        Some(e) => format!(
                            "truncated: the archive ends after entry {e:?} without the end-of-archive marker"
                        ),
                        None if pos == 0 => "empty file, not a tar archive".to_string(),
                        None => "truncated: no end-of-archive marker".to_string(),
                    },
                ));
            }
            if n < BLOCK as usize {
                return Err(ArchiveError::invalid(
                    &archive,
                    format!("truncated: a tar header at byte {pos} is cut short"),
                ));
            }
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            if self.entries >= MAX_ENTRIES {
                return Err(ArchiveError::invalid(
                    &archive,
                    format!("more than {MAX_ENTRIES} entries; not an image archive"),
                ));
            }
            self.entries += 1;
            let header = tar::Header::from_byte_slice(&block);
            check_checksum(header, &block).map_err(|why| {
                ArchiveError::invalid(
                    &archive,
                    if pos == 0 {
                        "not a tar archive (the first header's checksum is wrong)".to_string()
                    } else {
                        format!(
                            "corrupt tar header at byte {pos} (after entry {:?}): {why}",
                            self.last_entry.as_deref().unwrap_or("")
                        )
                    },
                )
            })?;
            let kind = header.entry_type();
            let data = pos + BLOCK;
            let mut size = header.entry_size().map_err(|e| {
                ArchiveError::invalid(&archive, format!("tar header at byte {pos}: {e}"))
            })?;
            let extension = kind.is_gnu_longname()
                || kind.is_gnu_longlink()
                || kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions();
            // The name as every later message shows it.
            let name = if extension {
                format!("<{} header at byte {pos}>", kind_name(kind))
            } else {
                let raw = pending
                    .pax_value("path")
                    .or_else(|| pending.long_name.clone())
                    .unwrap_or_else(|| header.path_bytes().into_owned());
                String::from_utf8_lossy(&raw).into_owned()
            };
            if !extension && let Some(s) = pending.pax_value("size") {
                size = std::str::from_utf8(&s)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| ArchiveError::entry(&archive, &name, "invalid PAX size"))?;
            }
            let end = data
                .checked_add(size)
                .filter(|end| self.len.is_none_or(|len| *end <= len));
            let Some(end) = end else {
                return Err(ArchiveError::entry(
                    &archive,
                    &name,
                    format!(
                        "truncated: its {size} bytes start at byte {data} but the archive is {} bytes",
                        self.len.unwrap_or_default()
                    ),
                ));
            };
            let padding = end.div_ceil(BLOCK) * BLOCK - end;
            if extension {
                if size > MAX_EXTENSION_BYTES {
                    return Err(ArchiveError::entry(
                        &archive,
                        &name,
                        format!("{size} bytes, more than the {MAX_EXTENSION_BYTES}-byte limit"),
                    ));
                }
                let mut bytes = vec![0u8; size as usize];
                let n = self.read_full(&mut bytes).map_err(|e| self.read_error(e))?;
                if n < bytes.len() {
                    return Err(self.cut_short(std::io::ErrorKind::UnexpectedEof.into()));
                }
                self.skip(padding).map_err(|e| self.cut_short(e))?;
                if kind.is_gnu_longname() {
                    pending.long_name = Some(trim_nul(bytes));
                } else if kind.is_gnu_longlink() {
                    pending.long_link = Some(trim_nul(bytes));
                } else if kind.is_pax_local_extensions() {
                    pending.pax = Some(bytes);
                }
                // Global PAX headers carry defaults (mtime, charset) that never change where data is.
                continue;
            }
            let link = pending
                .pax_value("linkpath")
                .or_else(|| pending.long_link.clone())
                .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
            pending = Pending::default();
            self.data_left = size;
            self.padding = padding;
            let Some(path) =
                normalize(&name).map_err(|why| ArchiveError::entry(&archive, &name, why))?
            else {
                // The archive root (`./`): nothing to name.
                let rest = self.data_left + self.padding;
                self.data_left = 0;
                self.padding = 0;
                self.skip(rest).map_err(|e| self.cut_short(e))?;
                continue;
            };
            let kind = match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Directory,
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = String::from_utf8_lossy(&link.unwrap_or_default()).into_owned();
                    let resolved = if kind == tar::EntryType::Symlink {
                        resolve_symlink(&path, &target)
                    } else {
                        normalize(&target).and_then(|t| t.ok_or("a hard link to the archive root"))
                    }
                    .map_err(|why| {
                        ArchiveError::entry(
                            &archive,
                            &name,
                            format!("link to {target:?} points outside the archive ({why})"),
                        )
                    })?;
                    EntryKind::Link(resolved)
                }
                tar::EntryType::GNUSparse => {
                    return Err(ArchiveError::entry(
                        &archive,
                        &name,
                        "sparse files are not supported in image archives",
                    ));
                }
                other => EntryKind::Other(other),
            };
            self.last_entry = Some(path.clone());
            return Ok(Some(TarEntry {
                path,
                kind,
                offset: data,
                size,
            }));
        }
    }

    fn read_error(&self, e: std::io::Error) -> ArchiveError {
        ArchiveError::invalid(&self.archive, format!("cannot read: {e}"))
    }

    fn cut_short(&self, e: std::io::Error) -> ArchiveError {
        match &self.last_entry {
            Some(entry) if e.kind() == std::io::ErrorKind::UnexpectedEof => ArchiveError::entry(
                &self.archive,
                entry,
                "truncated: the archive ends inside this entry",
            ),
            _ => self.read_error(e),
        }
    }
}

/// Reads what is left of the current entry's data.
struct EntryData<'a> {
    walk: &'a mut TarEntries,
}

impl Read for EntryData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (buf.len() as u64).min(self.walk.data_left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.walk.input.read(&mut buf[..want])?;
        self.walk.data_left -= n as u64;
        self.walk.pos += n as u64;
        Ok(n)
    }
}

/// GNU long names and PAX records that describe the next entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

impl Pending {
    fn pax_value(&self, key: &str) -> Option<Vec<u8>> {
        let pax = self.pax.as_ref()?;
        tar::PaxExtensions::new(pax)
            .flatten()
            .filter(|e| e.key() == Ok(key))
            .last()
            .map(|e| e.value_bytes().to_vec())
    }
}

fn check_checksum(header: &tar::Header, block: &[u8]) -> std::result::Result<(), String> {
    let stored = header.cksum().map_err(|e| e.to_string())?;
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|b| u32::from(*b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    if sum == stored {
        Ok(())
    } else {
        Err("header checksum mismatch".into())
    }
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    if kind.is_gnu_longname() {
        "GNU long name"
    } else if kind.is_gnu_longlink() {
        "GNU long link"
    } else if kind.is_pax_global_extensions() {
        "PAX global"
    } else {
        "PAX"
    }
}

fn trim_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// An entry name as an archive path (`./a//b/` → `a/b`); `None` for the root itself. Absolute paths and
/// `..` components are refused: no tool that writes image archives produces them, and an extracting reader
/// would write outside its directory.
pub fn normalize(name: &str) -> std::result::Result<Option<String>, &'static str> {
    if name.starts_with('/') {
        return Err("absolute path");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("'..' in the path"),
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// Where a symlink at `path` pointing to `target` lands, as an archive path; refuses absolute targets and
/// ones that climb above the archive root.
fn resolve_symlink(path: &str, target: &str) -> std::result::Result<String, &'static str> {
    if target.starts_with('/') {
        return Err("absolute target");
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("climbs above the archive root");
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("points at the archive root");
    }
    Ok(parts.join("/"))
}

/// Turn links into the spans of the files they reach; dangling links and loops are dropped (reading
/// them then says the entry is missing).
fn resolve_links(nodes: HashMap<String, Node>) -> HashMap<String, Span> {
    let mut files = HashMap::with_capacity(nodes.len());
    for (name, node) in &nodes {
        let mut node = node;
        for _ in 0..MAX_LINK_HOPS {
            match node {
                Node::File(span) => {
                    files.insert(name.clone(), *span);
                    break;
                }
                Node::Link(target) => match nodes.get(target) {
                    Some(next) => node = next,
                    None => break,
                },
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(normalize("./a//b/").unwrap().as_deref(), Some("a/b"));
        assert_eq!(normalize("./").unwrap(), None);
        assert!(normalize("/etc/passwd").is_err());
        assert!(normalize("a/../../b").is_err());
        assert_eq!(
            resolve_symlink("abc/layer.tar", "../def/layer.tar").unwrap(),
            "def/layer.tar"
        );
        assert!(resolve_symlink("abc/layer.tar", "../../x").is_err());
        assert!(resolve_symlink("abc/layer.tar", "/x").is_err());
    }

    fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
        let p = dir.join("a.tar");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    #[test]
    fn indexes_files_long_names_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(150));
        b.append_data(
            &mut header(tar::EntryType::Regular, 3),
            "./x/a",
            &b"abc"[..],
        )
        .unwrap();
        b.append_data(&mut header(tar::EntryType::Regular, 2), &long, &b"zz"[..])
            .unwrap();
        let mut l = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut l, "y/link", "../x/a").unwrap();
        let mut l = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut l, "dangling", "nowhere").unwrap();
        let p = write(dir.path(), &b.into_inner().unwrap());
        let idx = TarIndex::scan(&p, &p).unwrap();
        assert_eq!(idx.read_small("x/a").unwrap(), b"abc");
        assert_eq!(idx.read_small("y/link").unwrap(), b"abc");
        assert_eq!(idx.read_small(&long).unwrap(), b"zz");
        assert!(idx.get("dangling").is_none());
    }

    #[test]
    fn refuses_oversized_extension_headers() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let huge = vec![b'a'; (MAX_EXTENSION_BYTES + 1) as usize];
        b.append_data(
            &mut header(tar::EntryType::GNULongName, huge.len() as u64),
            "././@LongLink",
            &huge[..],
        )
        .unwrap();
        let p = write(dir.path(), &b.into_inner().unwrap());
        let err = TarIndex::scan(&p, &p).unwrap_err().to_string();
        assert!(
            err.contains("GNU long name") && err.contains("limit"),
            "{err}"
        );
    }

    #[test]
    fn not_a_tar_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), &[7u8; 1024]);
        let err = TarIndex::scan(&p, &p).unwrap_err().to_string();
        assert!(err.contains("not a tar archive"), "{err}");
        let p = write(dir.path(), b"");
        let err = TarIndex::scan(&p, &p).unwrap_err().to_string();
        assert!(err.contains("empty file"), "{err}");
    }
}
