//! Just enough DER to take a SubjectPublicKeyInfo apart: tag, length, contents, nothing else. Every
//! length is checked against what is left; nothing is allocated.

/// ASN.1 tags this crate reads.
pub const SEQUENCE: u8 = 0x30;
pub const OID: u8 = 0x06;
pub const BIT_STRING: u8 = 0x03;

/// A reader over DER bytes.
pub struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    pub fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    /// The next element, which must have tag `tag`: its contents.
    pub fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, after) = self.rest.split_first()?;
        if t != tag {
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
        Some(contents)
    }
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
}
