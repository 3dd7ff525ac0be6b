//! Just enough DER to take a SubjectPublicKeyInfo and an X.509 certificate apart: tag, length, contents,
//! times, and re-encoding an element. Every length is checked against what is left; reading allocates
//! nothing.

/// ASN.1 tags this crate reads.
pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const UTF8_STRING: u8 = 0x0c;
pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const SEQUENCE: u8 = 0x30;
/// `[0]` constructed (a certificate's version, an otherName).
pub const CONTEXT_0: u8 = 0xa0;
/// `[3]` constructed (a certificate's extensions).
pub const CONTEXT_3: u8 = 0xa3;

/// One element: its tag, contents and the whole encoding (tag and length included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Element<'a> {
    pub tag: u8,
    pub contents: &'a [u8],
    pub raw: &'a [u8],
}

/// A reader over DER bytes.
pub struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    pub fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, not consumed.
    pub fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element, whatever its tag (single-byte tags only, as X.509 uses).
    pub fn any(&mut self) -> Option<Element<'a>> {
        let all = self.rest;
        let (&tag, after) = all.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut after) = after.split_first()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            // Long form: 1..=4 length bytes, minimal (no leading zero, not below 128).
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || after.len() < n || after[0] == 0 {
                return None;
            }
            let len = after[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | b as usize);
            after = &after[n..];
            if len < 0x80 {
                return None;
            }
            len
        };
        if after.len() < len {
            return None;
        }
        let (contents, rest) = after.split_at(len);
        self.rest = rest;
        Some(Element {
            tag,
            contents,
            raw: &all[..all.len() - rest.len()],
        })
    }

    /// The next element, which must have tag `tag`: its contents.
    pub fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        self.element(tag).map(|e| e.contents)
    }

    /// The next element, which must have tag `tag`.
    pub fn element(&mut self, tag: u8) -> Option<Element<'a>> {
        if self.peek()? != tag {
            return None;
        }
        self.any()
    }

    /// The next element's contents if it has tag `tag`; otherwise nothing is consumed.
    pub fn optional(&mut self, tag: u8) -> Option<&'a [u8]> {
        if self.peek() == Some(tag) {
            self.read(tag)
        } else {
            None
        }
    }
}

/// `tag`, the DER length of `contents`, `contents`.
pub fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
pub fn time(e: &Element<'_>) -> Option<i64> {
    let text = std::str::from_utf8(e.contents).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (e.tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = digits[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let n = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    ferry_oci::date::unix_seconds(year, n(0)?, n(2)?, n(4)?, n(6)?, n(8)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths_and_refuses_overruns() {
        let mut d = Der::new(&[0x30, 0x02, 0x05, 0x00]);
        assert_eq!(d.read(SEQUENCE), Some(&[0x05, 0x00][..]));
        assert_eq!(d.read(SEQUENCE), None);
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(Der::new(&long).read(0x04).map(<[u8]>::len), Some(0x80));
        // Claims more than there is; non-minimal long form; wrong tag.
        assert_eq!(Der::new(&[0x30, 0x05, 0x00]).read(SEQUENCE), None);
        assert_eq!(Der::new(&[0x30, 0x81, 0x01, 0x00]).read(SEQUENCE), None);
        assert_eq!(Der::new(&[0x31, 0x00]).read(SEQUENCE), None);
    }

    #[test]
    fn encodes_what_it_reads() {
        for len in [0usize, 5, 0x7f, 0x80, 0x1234] {
            let contents = vec![9u8; len];
            let bytes = encode(OCTET_STRING, &contents);
            let e = Der::new(&bytes).any().unwrap();
            assert_eq!(
                (e.tag, e.contents, e.raw),
                (OCTET_STRING, &contents[..], &bytes[..])
            );
        }
    }

    #[test]
    fn times_in_both_forms() {
        let utc = Element {
            tag: UTC_TIME,
            contents: b"240402191909Z",
            raw: &[],
        };
        assert_eq!(time(&utc), Some(1712085549));
        let generalized = Element {
            tag: GENERALIZED_TIME,
            contents: b"21000101000000Z",
            raw: &[],
        };
        assert_eq!(time(&generalized), Some(4102444800));
        let bad = Element {
            tag: UTC_TIME,
            contents: b"2404021919Z",
            raw: &[],
        };
        assert_eq!(time(&bad), None);
    }
}
