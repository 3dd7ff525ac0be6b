//! Content digests (`sha256:<hex>`) and a streaming hasher.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a digest ferry can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// Not `<algorithm>:<encoded>` at all, or a sha256 digest whose hex is not 64 lowercase characters.
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex characters>")]
    Invalid(String),
    /// A well-formed digest of another algorithm (`sha512:…`), which ferry cannot verify and so refuses.
    #[error("unsupported digest algorithm in {0:?}: ferry verifies sha256 digests only")]
    UnsupportedAlgorithm(String),
}

/// A verified-shape sha256 digest. Other algorithms are refused at parse time because ferry could not verify
/// their content, and unverifiable bytes must never be stored.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut h = Hasher::new();
        h.update(bytes);
        h.finish()
    }

    /// The 64 lowercase hex characters (the blob's file name in a layout).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Always `sha256`, the only algorithm a [`Digest`] can hold.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// `sha256-<hex>`: the tag form used by cosign and the referrers tag schema.
    pub fn tag_form(&self) -> String {
        format!("sha256-{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(DigestError::Invalid(s.to_string()));
        };
        if alg != "sha256" {
            let alg_ok = !alg.is_empty()
                && alg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+._-".contains(c));
            return Err(if alg_ok && !hex.is_empty() {
                DigestError::UnsupportedAlgorithm(s.to_string())
            } else {
                DigestError::Invalid(s.to_string())
            });
        }
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::Invalid(s.to_string()));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 that counts bytes and whose state can be saved and restored, so an interrupted
/// download resumes — even in a new process — without re-reading what was already written.
/// The block function is sha2's (hardware-accelerated where the CPU has SHA extensions); only the buffering
/// and padding live here, because sha2's own hasher cannot export its state.
#[derive(Clone)]
pub struct Hasher {
    state: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    len: u64,
}

const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            state: H0,
            buf: [0; 64],
            buf_len: 0,
            len: 0,
        }
    }
}

impl Hasher {
    /// A hasher at the start of the stream (nothing hashed yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Hash the next `bytes` of the stream; any split of the stream into calls gives the same digest.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(bytes.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&bytes[..take]);
            self.buf_len += take;
            bytes = &bytes[take..];
            if self.buf_len < 64 {
                return;
            }
            let block = self.buf;
            compress_blocks(&mut self.state, &block);
            self.buf_len = 0;
        }
        let whole = bytes.len() / 64 * 64;
        if whole > 0 {
            compress_blocks(&mut self.state, &bytes[..whole]);
        }
        let rest = &bytes[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of every byte given to [`Hasher::update`] (and any restored state before them).
    pub fn finish(mut self) -> Digest {
        let bit_len = self.len.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        tail[self.buf_len] = 0x80;
        let total = if self.buf_len < 56 { 64 } else { 128 };
        tail[total - 8..total].copy_from_slice(&bit_len.to_be_bytes());
        compress_blocks(&mut self.state, &tail[..total]);
        let mut out = [0u8; 32];
        for (i, word) in self.state.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
        }
        Digest { hex: to_hex(&out) }
    }

    /// The state as one line of text (`sha256-state v1 <len> <state> <buffered>`), to persist beside a
    /// partial download.
    pub fn save(&self) -> String {
        let mut words = [0u8; 32];
        for (i, w) in self.state.iter().enumerate() {
            words[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        format!(
            "sha256-state v1 {} {} {}",
            self.len,
            to_hex(&words),
            to_hex(&self.buf[..self.buf_len])
        )
    }

    /// Restore a state written by [`Hasher::save`]; `None` if it is malformed or inconsistent.
    pub fn restore(saved: &str) -> Option<Hasher> {
        let mut parts = saved.trim_end().split(' ');
        if parts.next()? != "sha256-state" || parts.next()? != "v1" {
            return None;
        }
        let len: u64 = parts.next()?.parse().ok()?;
        let words = from_hex(parts.next()?)?;
        let buffered = from_hex(parts.next().unwrap_or(""))?;
        if parts.next().is_some() || words.len() != 32 || buffered.len() as u64 != len % 64 {
            return None;
        }
        let mut h = Hasher {
            len,
            buf_len: buffered.len(),
            ..Hasher::default()
        };
        for (i, w) in h.state.iter_mut().enumerate() {
            *w = u32::from_be_bytes(words[i * 4..i * 4 + 4].try_into().ok()?);
        }
        h.buf[..buffered.len()].copy_from_slice(&buffered);
        Some(h)
    }
}

/// Run the sha256 block function over whole 64-byte blocks, in place.
fn compress_blocks(state: &mut [u32; 8], bytes: &[u8]) {
    use sha2::digest::generic_array::GenericArray;
    use sha2::digest::typenum::U64;
    assert!(bytes.len().is_multiple_of(64));
    const _: () = assert!(std::mem::size_of::<GenericArray<u8, U64>>() == 64);
    const _: () = assert!(std::mem::align_of::<GenericArray<u8, U64>>() == 1);
    // SAFETY: GenericArray<u8, U64> is a #[repr(transparent)] wrapper of a 64-byte u8 array (size 64,
    // alignment 1, checked above), so whole 64-byte chunks of a byte slice are valid values of it. Copying
    // into an owned batch instead costs a quarter of the hashing speed.
    let blocks = unsafe {
        std::slice::from_raw_parts(
            bytes.as_ptr().cast::<GenericArray<u8, U64>>(),
            bytes.len() / 64,
        )
    };
    sha2::compress256(state, blocks);
}

/// The bytes of hex text (either case); None when it is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_matches_known_value() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_shapes() {
        let s = "sha256:03b62250a3cb1abd125271d393fc08bf0cc713391eda6b57c02d1ef85efcc25c";
        assert_eq!(s.parse::<Digest>().unwrap().to_string(), s);
        assert!(matches!(
            "sha256:ABC".parse::<Digest>(),
            Err(DigestError::Invalid(_))
        ));
        assert!(matches!(
            "sha256:03B62250a3cb1abd125271d393fc08bf0cc713391eda6b57c02d1ef85efcc25c"
                .parse::<Digest>(),
            Err(DigestError::Invalid(_))
        ));
        assert!(matches!(
            "sha512:abcd".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            "nope".parse::<Digest>(),
            Err(DigestError::Invalid(_))
        ));
    }

    #[test]
    fn matches_sha2_for_every_split_and_survives_save_restore() {
        use sha2::Digest as _;
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [
            0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 4095, 4096, 4097, 20_000,
        ] {
            let expected = to_hex(&sha2::Sha256::digest(&data[..len]));
            for split in [0, 1, 63, 64, 100, len / 2, len] {
                let split = split.min(len);
                let mut h = Hasher::new();
                h.update(&data[..split]);
                let mut h = Hasher::restore(&h.save()).expect("restores");
                h.update(&data[split..len]);
                assert_eq!(h.len(), len as u64);
                assert_eq!(h.finish().hex(), expected, "len {len} split {split}");
            }
        }
        assert!(Hasher::restore("sha256-state v1 3 00 ab").is_none());
        assert!(Hasher::restore("garbage").is_none());
    }

    #[test]
    fn hasher_counts_bytes_across_updates() {
        let mut h = Hasher::new();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.len(), 11);
        assert_eq!(h.finish(), Digest::of(b"hello world"));
    }
}

#[cfg(test)]
mod speed {
    /// `cargo test --release -p ferry-oci -- --ignored --nocapture hasher_speed`: ferry's hasher against
    /// sha2's own on 512 MiB (they share the block function; the difference is buffering).
    #[test]
    #[ignore]
    fn hasher_speed() {
        use sha2::Digest as _;
        let data = vec![7u8; 512 << 20];
        let t = std::time::Instant::now();
        let mut h = super::Hasher::new();
        for c in data.chunks(16 << 10) {
            h.update(c);
        }
        let ours = h.finish();
        let a = t.elapsed();
        let t = std::time::Instant::now();
        let mut s = sha2::Sha256::new();
        for c in data.chunks(16 << 10) {
            s.update(c);
        }
        let theirs = super::to_hex(&s.finalize());
        let b = t.elapsed();
        assert_eq!(ours.hex(), theirs);
        eprintln!(
            "ferry {:?} ({:.0} MB/s), sha2 {:?} ({:.0} MB/s)",
            a,
            512.0 / a.as_secs_f64() * 1.048576,
            b,
            512.0 / b.as_secs_f64() * 1.048576
        );
    }
}
