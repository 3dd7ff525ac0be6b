//! Just enough X.509 to describe a server's certificate in an error (subject, issuer, SANs, validity,
//! CA flag) and to check the validity of one the user trusts by itself. A tiny DER reader instead of an
//! X.509 crate: these few fields are all ferry reads, and rustls/webpki do the real verification.

use std::fmt;
use std::net::IpAddr;

/// What a certificate says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's distinguished name, as text.
    pub subject: String,
    /// The issuer's distinguished name, as text.
    pub issuer: String,
    /// `DNS:name` and `IP:address` entries of subjectAltName.
    pub sans: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// basicConstraints `CA:TRUE`.
    pub is_ca: bool,
}

impl CertInfo {
    /// None when `der` is not a certificate this reader understands.
    pub fn parse(der: &[u8]) -> Option<CertInfo> {
        let (_, cert, _) = expect(der, SEQUENCE)?;
        let (_, tbs, _) = expect(cert, SEQUENCE)?;
        let mut rest = tbs;
        if rest.first() == Some(&0xa0) {
            rest = tlv(rest)?.2; // [0] version
        }
        rest = expect(rest, 0x02)?.2; // serialNumber
        rest = expect(rest, SEQUENCE)?.2; // signature algorithm
        let (_, issuer, rest) = expect(rest, SEQUENCE)?;
        let (_, validity, rest) = expect(rest, SEQUENCE)?;
        let (_, subject, mut rest) = expect(rest, SEQUENCE)?;
        rest = expect(rest, SEQUENCE)?.2; // subjectPublicKeyInfo
        let (nb_tag, nb, v) = tlv(validity)?;
        let (na_tag, na, _) = tlv(v)?;
        let mut info = CertInfo {
            subject: name(subject)?,
            issuer: name(issuer)?,
            not_before: time(nb_tag, nb)?,
            not_after: time(na_tag, na)?,
            ..CertInfo::default()
        };
        while let Some((tag, content, next)) = tlv(rest) {
            rest = next;
            if tag == 0xa3 {
                info.read_extensions(content)?;
            }
        }
        Some(info)
    }

    fn read_extensions(&mut self, explicit: &[u8]) -> Option<()> {
        let (_, mut list, _) = expect(explicit, SEQUENCE)?;
        while let Some((_, ext, next)) = tlv(list) {
            list = next;
            let (_, oid, mut rest) = expect(ext, 0x06)?;
            if rest.first() == Some(&0x01) {
                rest = tlv(rest)?.2; // critical
            }
            let (_, value, _) = expect(rest, 0x04)?;
            match oid {
                [0x55, 0x1d, 0x11] => {
                    let (_, mut names, _) = expect(value, SEQUENCE)?;
                    while let Some((tag, content, next)) = tlv(names) {
                        names = next;
                        match (tag, content.len()) {
                            (0x82, _) => self
                                .sans
                                .push(format!("DNS:{}", String::from_utf8_lossy(content))),
                            (0x87, 4) => {
                                let ip = <[u8; 4]>::try_from(content).ok()?;
                                self.sans.push(format!("IP:{}", IpAddr::from(ip)));
                            }
                            (0x87, 16) => {
                                let ip = <[u8; 16]>::try_from(content).ok()?;
                                self.sans.push(format!("IP:{}", IpAddr::from(ip)));
                            }
                            _ => {}
                        }
                    }
                }
                [0x55, 0x1d, 0x13] => {
                    let (_, constraints, _) = expect(value, SEQUENCE)?;
                    self.is_ca = matches!(tlv(constraints), Some((0x01, [b], _)) if *b != 0);
                }
                _ => {}
            }
        }
        Some(())
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject \"{}\", issuer \"{}\", ",
            self.subject, self.issuer
        )?;
        if self.sans.is_empty() {
            write!(f, "no subjectAltName")?;
        } else {
            write!(f, "SANs {}", self.sans.join(", "))?;
        }
        write!(
            f,
            ", valid {} to {}",
            ferry_oci::date::rfc3339(self.not_before),
            ferry_oci::date::rfc3339(self.not_after)
        )?;
        if self.is_ca {
            write!(f, ", CA:TRUE")?;
        }
        Ok(())
    }
}

const SEQUENCE: u8 = 0x30;

/// One DER element: (tag, content, what follows). Single-byte tags and definite lengths only, as DER has.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    tlv(input).filter(|(t, _, _)| *t == tag)
}

/// `CN=…, O=…` from a Name, the attributes people recognise; others are skipped.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while let Some((_, set, next)) = tlv(rdns) {
        rdns = next;
        let (_, attr, _) = expect(set, SEQUENCE)?;
        let (_, oid, rest) = expect(attr, 0x06)?;
        let (_, value, _) = tlv(rest)?;
        let label = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            [0x55, 0x04, 0x06] => "C",
            _ => continue,
        };
        parts.push(format!("{label}={}", String::from_utf8_lossy(value)));
    }
    Some(parts.join(", "))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) → Unix seconds.
fn time(tag: u8, content: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    ferry_oci::date::unix_seconds(year, field(0)?, field(2)?, field(4)?, field(6)?, field(8)?)
}
