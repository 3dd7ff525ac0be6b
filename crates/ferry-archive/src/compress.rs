//! gzip and zstd around tar files: recognised by their magic bytes when read, chosen by the file name when
//! written.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use crate::error::{ArchiveError, Result};

/// How a tar file is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`.tar.gz`, `.tgz`).
    Gzip,
    /// Zstandard (`.tar.zst`, Zarf's package format).
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const CHUNK: usize = 1 << 20;

impl Compression {
    /// By content: the extension of a file someone renamed proves nothing.
    pub fn sniff(path: &Path) -> Result<Compression> {
        let mut f = File::open(path).map_err(|e| ArchiveError::io(path, e))?;
        let mut head = [0u8; 4];
        let mut n = 0;
        while n < head.len() {
            match f
                .read(&mut head[n..])
                .map_err(|e| ArchiveError::io(path, e))?
            {
                0 => break,
                k => n += k,
            }
        }
        Ok(Self::of_bytes(&head[..n]))
    }

    /// By the first bytes of a file (gzip and zstd magic numbers); anything else is taken as uncompressed.
    pub fn of_bytes(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// For writing: `.tar.zst`/`.tzst` → zstd, `.tar.gz`/`.tgz` → gzip, anything else a plain tar.
    pub fn for_path(path: &Path) -> Compression {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".zst") || name.ends_with(".tzst") {
            Compression::Zstd
        } else if name.ends_with(".gz") || name.ends_with(".tgz") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// The layer media type suffix this compression has in OCI (`+gzip`, `+zstd`).
    pub(crate) fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// No image archive or package decompresses to more than this (1 TiB)...
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 40;
/// ...or expands more than this many times once past [`RATIO_FLOOR`]: tar files of layers and configs do
/// not come near it (gzip cannot even reach it on real data), a decompression bomb does.
pub const MAX_RATIO: u64 = 1000;
/// Below this much output the ratio is not checked: a small file that compresses well is harmless.
pub const RATIO_FLOOR: u64 = 64 << 20;

impl Compression {
    /// A reader of `path`'s bytes, decompressed by what its content says it is, within
    /// [`MAX_DECOMPRESSED_BYTES`] and [`MAX_RATIO`].
    pub fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
        let kind = Compression::sniff(path)?;
        let src = BufReader::with_capacity(
            CHUNK,
            File::open(path).map_err(|e| ArchiveError::io(path, e))?,
        );
        Ok(kind.reader(src))
    }

    fn reader(self, src: BufReader<File>) -> Box<dyn Read + Send> {
        let consumed = Arc::new(AtomicU64::new(0));
        let src = Counted {
            inner: src,
            count: consumed.clone(),
        };
        let inner: Box<dyn Read + Send> = match self {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(src)),
            Compression::Zstd => Box::new(ZstdFrames::new(src)),
            Compression::None => return Box::new(src),
        };
        Box::new(Bounded {
            inner,
            consumed,
            produced: 0,
        })
    }
}

/// Counts the compressed bytes a decoder takes.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.count.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt)
    }
}

/// Stops a decoder whose output passes [`MAX_DECOMPRESSED_BYTES`] or [`MAX_RATIO`] times its input.
struct Bounded {
    inner: Box<dyn Read + Send>,
    consumed: Arc<AtomicU64>,
    produced: u64,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        let consumed = self.consumed.load(Ordering::Relaxed).max(1);
        if self.produced > MAX_DECOMPRESSED_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "decompresses to more than {MAX_DECOMPRESSED_BYTES} bytes, the limit for archives; \
                     refusing it as a decompression bomb"
                ),
            ));
        }
        if self.produced > RATIO_FLOOR && self.produced / consumed >= MAX_RATIO {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{consumed} compressed bytes expanded to {} bytes, more than the {MAX_RATIO}:1 ratio \
                     limit for archives; refusing it as a decompression bomb",
                    self.produced
                ),
            ));
        }
        Ok(n)
    }
}

/// Decompress `path` into a new temp file in `temp_dir` (a compressed stream cannot be seeked, and an index
/// of byte ranges needs a file that can).
pub fn decompress_to_temp(
    path: &Path,
    kind: Compression,
    temp_dir: &Path,
) -> Result<tempfile::TempPath> {
    let src = BufReader::with_capacity(
        CHUNK,
        File::open(path).map_err(|e| ArchiveError::io(path, e))?,
    );
    let tmp = tempfile::Builder::new()
        .prefix(".ferry-archive-")
        .suffix(".tar")
        .tempfile_in(temp_dir)
        .map_err(|e| ArchiveError::io(temp_dir, e))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut out = BufWriter::with_capacity(CHUNK, file);
    let what = match kind {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::None => "tar",
    };
    copy(&mut kind.reader(src), &mut out)
        .and_then(|_| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::WriteZero => {
                ArchiveError::io(&*tmp_path, e)
            }
            _ => ArchiveError::invalid(path, format!("cannot decompress ({what}): {e}")),
        })?;
    Ok(tmp_path)
}

fn copy(r: &mut dyn Read, w: &mut dyn Write) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Every frame of a zstd stream (`zstd` writes one; `pzstd` and concatenated files have several), skippable
/// frames skipped, each frame's checksum checked.
struct ZstdFrames<R: BufRead> {
    source: R,
    frame: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        ZstdFrames {
            source,
            frame: ruzstd::decoding::FrameDecoder::new(),
            in_frame: false,
        }
    }

    /// Start the next frame; `false` at the end of the input.
    fn next_frame(&mut self) -> std::io::Result<bool> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.frame.init(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = std::io::copy(
                        &mut (&mut self.source).take(u64::from(length)),
                        &mut std::io::sink(),
                    )?;
                    if skipped < u64::from(length) {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                if self.frame.can_collect() > 0 {
                    return self.frame.read(buf);
                }
                if self.frame.is_finished() {
                    self.in_frame = false;
                    let (read, computed) = (
                        self.frame.get_checksum_from_data(),
                        self.frame.get_calculated_checksum(),
                    );
                    if let (Some(a), Some(b)) = (read, computed)
                        && a != b
                    {
                        return Err(std::io::Error::other("zstd content checksum mismatch"));
                    }
                    continue;
                }
                self.frame
                    .decode_blocks(
                        &mut self.source,
                        ruzstd::decoding::BlockDecodingStrategy::UptoBlocks(1),
                    )
                    .map_err(std::io::Error::other)?;
                continue;
            }
            if !self.next_frame()? {
                return Ok(0);
            }
            self.in_frame = true;
        }
    }
}

/// Where tar bytes go on their way to a file: as they are, through gzip, or through zstd.
///
/// Most of an image archive is layers that are already gzip- or zstd-compressed; compressing them again
/// costs minutes of CPU for nothing. [`Sink::set_compressible`] switches between the real level and a
/// stored one, ending the current gzip member or zstd frame and starting another (every decoder reads
/// concatenated members and frames as one stream). The switches depend only on content, so equal input
/// still gives equal bytes.
pub(crate) struct Sink {
    inner: Inner,
    compressible: bool,
}

enum Inner {
    Plain(BufWriter<File>),
    /// `None` only while one member is finished and the next is being started.
    Gzip(Option<flate2::write::GzEncoder<BufWriter<File>>>),
    Zstd(ZstdPipe),
}

fn gzip_level(compressible: bool) -> flate2::Compression {
    if compressible {
        // Level 6 (the default): what `gzip` does.
        flate2::Compression::default()
    } else {
        flate2::Compression::none()
    }
}

impl Sink {
    pub fn new(file: File, kind: Compression) -> Sink {
        let w = BufWriter::with_capacity(CHUNK, file);
        // The gzip header has mtime 0 and no name, so equal input gives equal bytes.
        let inner = match kind {
            Compression::None => Inner::Plain(w),
            Compression::Gzip => {
                Inner::Gzip(Some(flate2::write::GzEncoder::new(w, gzip_level(true))))
            }
            Compression::Zstd => Inner::Zstd(ZstdPipe::start(w)),
        };
        Sink {
            inner,
            compressible: true,
        }
    }

    /// Whether the bytes that follow are worth compressing (see [`Sink`]).
    pub fn set_compressible(&mut self, compressible: bool) -> std::io::Result<()> {
        if compressible == self.compressible {
            return Ok(());
        }
        self.compressible = compressible;
        match &mut self.inner {
            Inner::Plain(_) => {}
            Inner::Gzip(g) => {
                let w = g.take().expect("gzip member open").finish()?;
                *g = Some(flate2::write::GzEncoder::new(w, gzip_level(compressible)));
            }
            Inner::Zstd(z) => z.switch(compressible)?,
        }
        Ok(())
    }

    /// Flush everything and hand back the file (to sync and rename).
    pub fn finish(self) -> std::io::Result<File> {
        let w = match self.inner {
            Inner::Plain(w) => w,
            Inner::Gzip(g) => g.expect("gzip member open").finish()?,
            Inner::Zstd(z) => z.finish()?,
        };
        w.into_inner().map_err(|e| e.into_error())
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(w) => w.write(buf),
            Inner::Gzip(w) => w.as_mut().expect("gzip member open").write(buf),
            Inner::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            Inner::Plain(w) => w.flush(),
            Inner::Gzip(w) => w.as_mut().expect("gzip member open").flush(),
            Inner::Zstd(w) => w.flush(),
        }
    }
}

enum Msg {
    Data(Vec<u8>),
    /// End the frame; the next one is compressed (`true`) or stored.
    Switch(bool),
}

/// ruzstd's encoder pulls from a reader while the tar builder pushes into a writer, so the encoder runs on
/// its own thread fed through a bounded channel (a few MiB in flight). ruzstd panics on I/O errors
/// (`unwrap`), so its output goes through [`Capture`], which keeps the first error for `finish` to report.
pub(crate) struct ZstdPipe {
    tx: Option<mpsc::SyncSender<Msg>>,
    buf: Vec<u8>,
    worker: Option<std::thread::JoinHandle<std::io::Result<BufWriter<File>>>>,
}

impl ZstdPipe {
    fn start(out: BufWriter<File>) -> ZstdPipe {
        use ruzstd::encoding::{CompressionLevel, FrameCompressor};
        let (tx, rx) = mpsc::sync_channel::<Msg>(4);
        let worker = std::thread::Builder::new()
            .name("ferry-zstd".into())
            .spawn(move || {
                let mut source = ChannelReader {
                    rx,
                    cur: Vec::new(),
                    pos: 0,
                    switch: None,
                };
                let mut drain = Capture {
                    inner: out,
                    error: None,
                };
                let mut compressible = true;
                loop {
                    let level = if compressible {
                        CompressionLevel::Fastest
                    } else {
                        CompressionLevel::Uncompressed
                    };
                    let mut enc = FrameCompressor::new(level);
                    enc.set_source(source);
                    enc.set_drain(drain);
                    enc.compress();
                    source = enc.take_source().expect("source set above");
                    drain = enc.take_drain().expect("drain set above");
                    match source.switch.take() {
                        Some(next) => compressible = next,
                        None => break,
                    }
                }
                match drain.error {
                    Some(e) => Err(e),
                    None => Ok(drain.inner),
                }
            })
            .expect("spawn the zstd thread");
        ZstdPipe {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
            worker: Some(worker),
        }
    }

    fn send(&mut self, msg: Msg) -> std::io::Result<()> {
        let tx = self.tx.as_ref().expect("open until finish");
        tx.send(msg)
            .map_err(|_| std::io::Error::other("the zstd encoder stopped"))
    }

    fn send_buffered(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.send(Msg::Data(chunk))
    }

    fn switch(&mut self, compressible: bool) -> std::io::Result<()> {
        self.send_buffered()?;
        self.send(Msg::Switch(compressible))
    }

    fn finish(mut self) -> std::io::Result<BufWriter<File>> {
        self.send_buffered()?;
        self.tx = None;
        let worker = self.worker.take().expect("worker until finish");
        match worker.join() {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::other("the zstd encoder panicked")),
        }
    }
}

impl Write for ZstdPipe {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let take = (CHUNK - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == CHUNK {
            self.send_buffered()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ZstdPipe {
    fn drop(&mut self) {
        // Closing the channel ends the encoder's input; wait so no thread outlives a failed write.
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<Msg>,
    cur: Vec<u8>,
    pos: usize,
    /// Set when a frame must end here; taken by the encoder loop.
    switch: Option<bool>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.switch.is_some() {
            return Ok(0);
        }
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Msg::Data(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Msg::Switch(next)) => {
                    self.switch = Some(next);
                    return Ok(0);
                }
                // The writer finished (or gave up): end of input.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Keeps the first write error instead of returning it (see [`ZstdPipe`]); later writes are dropped.
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
        if self.error.is_none()
            && let Err(e) = self.inner.flush()
        {
            self.error = Some(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zstd(data: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.zst");
        let mut s = Sink::new(File::create(&p).unwrap(), Compression::Zstd);
        s.write_all(data).unwrap();
        s.finish().unwrap();
        std::fs::read(p).unwrap()
    }

    fn unpack(bytes: &[u8], kind: Compression) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in");
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(Compression::sniff(&p).unwrap(), kind);
        let out = decompress_to_temp(&p, kind, dir.path()).unwrap();
        std::fs::read(&out).unwrap()
    }

    #[test]
    fn zstd_round_trips_across_frames_and_skippable_frames() {
        let a: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let b = b"second frame".to_vec();
        let mut stream = zstd(&a);
        assert_eq!(stream, zstd(&a), "deterministic");
        // A skippable frame (magic 0x184D2A50, 4-byte length) between two frames.
        stream.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        stream.extend_from_slice(&zstd(&b));
        let mut expected = a.clone();
        expected.extend_from_slice(&b);
        assert_eq!(unpack(&stream, Compression::Zstd), expected);
    }

    #[test]
    fn gzip_round_trips_and_corruption_is_named() {
        let data = b"hello gzip".repeat(1000);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        let mut s = Sink::new(File::create(&p).unwrap(), Compression::Gzip);
        s.write_all(&data).unwrap();
        s.finish().unwrap();
        let gz = std::fs::read(&p).unwrap();
        assert_eq!(unpack(&gz, Compression::Gzip), data);
        let cut = &gz[..gz.len() / 2];
        std::fs::write(&p, cut).unwrap();
        let err = decompress_to_temp(&p, Compression::Gzip, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.gz") && err.contains("gzip"), "{err}");
    }

    #[test]
    fn switching_levels_keeps_one_stream() {
        for kind in [Compression::Zstd, Compression::Gzip] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("x");
            let mut s = Sink::new(File::create(&p).unwrap(), kind);
            let mut expected = Vec::new();
            for (i, part) in [
                b"aaaa".repeat(50_000),
                b"bbbb".repeat(3),
                b"cccc".repeat(70_000),
            ]
            .iter()
            .enumerate()
            {
                s.set_compressible(i != 1).unwrap();
                s.write_all(part).unwrap();
                expected.extend_from_slice(part);
            }
            s.finish().unwrap();
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                bytes.len() < expected.len() / 10,
                "{kind:?} still compresses"
            );
            assert_eq!(unpack(&bytes, kind), expected, "{kind:?}");
        }
    }

    /// A valid `.tar.zst` declaring a 512 MiB file of zeros: a few KiB of zstd frames. Refused once past
    /// the ratio floor, by the spooling reader and the streaming one alike, with the limit named and no
    /// spool file left behind.
    #[test]
    fn decompression_bombs_are_refused_naming_the_limit() {
        let mut h = tar::Header::new_ustar();
        h.set_path("blobs/sha256/bomb").unwrap();
        h.set_size(512 << 20);
        h.set_mode(0o644);
        h.set_cksum();
        let mut stream = zstd(h.as_bytes());
        let zeros = zstd(&vec![0u8; 1 << 20]);
        for _ in 0..512 {
            stream.extend_from_slice(&zeros);
        }
        stream.extend_from_slice(&zstd(&[0u8; 1024]));
        assert!(stream.len() < 512 << 10, "{} bytes", stream.len());
        let dir = tempfile::tempdir().unwrap();
        let bomb = dir.path().join("bomb.tar.zst");
        std::fs::write(&bomb, &stream).unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        let err = decompress_to_temp(&bomb, Compression::Zstd, &spool)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bomb.tar.zst") && err.contains("1000:1 ratio limit"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(&spool).unwrap().count(),
            0,
            "spool removed"
        );
        let err = std::io::copy(&mut Compression::open(&bomb).unwrap(), &mut std::io::sink())
            .unwrap_err()
            .to_string();
        assert!(err.contains("decompression bomb"), "{err}");
        // Real archives are far below the ratio: the round trips above pass through the same reader.
    }

    #[test]
    fn names_choose_compression() {
        assert_eq!(
            Compression::for_path(Path::new("a.tar.zst")),
            Compression::Zstd
        );
        assert_eq!(Compression::for_path(Path::new("a.TGZ")), Compression::Gzip);
        assert_eq!(Compression::for_path(Path::new("a.tar")), Compression::None);
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test -p ferry-archive --lib -- --ignored --nocapture zstd_speed`: the encoder's throughput on
    /// text-like data (an uncompressed layer) and on random data (a layer that is already compressed).
    #[test]
    #[ignore]
    fn zstd_speed() {
        let words = [
            "usr", "lib", "bin", "share", "locale", "x86_64", "linux", "gnu", "so", "python3",
        ];
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut text = Vec::with_capacity(100 << 20);
        let mut noise = Vec::with_capacity(100 << 20);
        while text.len() < 100 << 20 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.extend_from_slice(words[(state % 10) as usize].as_bytes());
            text.push(if state & 0x30 == 0 { b'\n' } else { b'/' });
            noise.extend_from_slice(&state.to_le_bytes());
        }
        for (what, data, compressible) in [
            ("text", &text, true),
            ("random", &noise, true),
            ("random, stored", &noise, false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("x.zst");
            let t = std::time::Instant::now();
            let mut s = Sink::new(File::create(&p).unwrap(), Compression::Zstd);
            s.set_compressible(compressible).unwrap();
            s.write_all(data).unwrap();
            s.finish().unwrap();
            let secs = t.elapsed().as_secs_f64();
            let out = std::fs::metadata(&p).unwrap().len();
            eprintln!(
                "zstd {what}: {:.0} MB/s, {} MiB → {} MiB",
                data.len() as f64 / secs / 1e6,
                data.len() >> 20,
                out >> 20
            );
        }
    }
}
