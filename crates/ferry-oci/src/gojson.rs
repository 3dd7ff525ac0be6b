//! JSON bytes the way Go's `encoding/json` writes them: compact, no trailing newline, and `<`, `>`, `&`,
//! U+2028, U+2029 escaped. Zarf and oras-go write `index.json` with Go, so byte compatibility needs this.

use serde::Serialize;

/// Serialize `value` as Go would. Struct field order comes from the Rust type, map keys must be sorted
/// (use `BTreeMap`), as Go sorts map keys.
pub fn to_vec<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let plain = serde_json::to_vec(value)?;
    Ok(escape_html(&plain))
}

/// The characters Go escapes can only appear inside JSON strings, so replacing them anywhere is safe.
fn escape_html(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                continue;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn escapes_like_go() {
        let mut m = BTreeMap::new();
        m.insert("b", "x<y>&z\u{2028}\u{2029}é");
        m.insert("a", "plain");
        let out = super::to_vec(&m).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":"plain","b":"x\u003cy\u003e\u0026z\u2028\u2029é"}"#
        );
    }
}
