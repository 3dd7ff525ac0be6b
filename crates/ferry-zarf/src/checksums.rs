//! `checksums.txt` and `metadata.aggregateChecksum` (zarf-compat §7): what a package must contain, checked
//! against what it does contain.

use std::collections::BTreeMap;

use ferry_oci::Digest;
use serde::Serialize;

use crate::{CHECKSUMS, SIGNATURES, ZARF_YAML};

/// Files that `checksums.txt` never lists: the definition, the list itself, signatures.
pub fn is_unlisted(rel: &str) -> bool {
    rel == ZARF_YAML || rel == CHECKSUMS || SIGNATURES.contains(&rel)
}

/// `checksums.txt` for these files: `<hex> <path>` per listed file, sorted, `\n`-terminated.
pub fn render(files: &BTreeMap<String, Digest>) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .filter(|(rel, _)| !is_unlisted(rel))
        .map(|(rel, d)| format!("{} {rel}", d.hex()))
        .collect();
    lines.sort();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// One thing wrong with a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Problem {
    /// `checksums.txt` is absent.
    MissingChecksums,
    /// `zarf.yaml` has no `metadata.aggregateChecksum`.
    NoAggregate,
    /// `checksums.txt` does not hash to `metadata.aggregateChecksum`: none of its lines can be trusted.
    #[serde(rename_all = "camelCase")]
    AggregateMismatch {
        /// The aggregate checksum `zarf.yaml` records.
        expected: String,
        /// The sha256 of `checksums.txt`.
        actual: String,
    },
    /// A line of `checksums.txt` that is not `<sha256> <path>`.
    #[serde(rename_all = "camelCase")]
    InvalidLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A listed file whose content hashes to something else.
    #[serde(rename_all = "camelCase")]
    Mismatch {
        /// The file's path in the package.
        path: String,
        /// The digest `checksums.txt` lists (hex).
        expected: String,
        /// The digest of its content (hex).
        actual: String,
    },
    /// A listed file that is not in the package.
    Missing {
        /// The file's path in the package.
        path: String,
    },
    /// A file in the package that `checksums.txt` does not list.
    Unexpected {
        /// The file's path in the package.
        path: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingChecksums => write!(f, "{CHECKSUMS} is missing"),
            Problem::NoAggregate => write!(
                f,
                "{ZARF_YAML} has no metadata.aggregateChecksum, so {CHECKSUMS} cannot be trusted"
            ),
            Problem::AggregateMismatch { expected, actual } => write!(
                f,
                "{CHECKSUMS} hashes to {actual}, but metadata.aggregateChecksum in {ZARF_YAML} is {expected}"
            ),
            Problem::InvalidLine { line, text } => {
                write!(
                    f,
                    "{CHECKSUMS} line {line} is not `<sha256> <path>`: {text:?}"
                )
            }
            Problem::Mismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{path}: content hashes to {actual}, {CHECKSUMS} says {expected}"
            ),
            Problem::Missing { path } => {
                write!(
                    f,
                    "{path}: listed in {CHECKSUMS} but missing from the package"
                )
            }
            Problem::Unexpected { path } => {
                write!(f, "{path}: in the package but not listed in {CHECKSUMS}")
            }
        }
    }
}

/// The outcome of checking a package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Integrity {
    /// No problems.
    pub ok: bool,
    /// Files whose digest matched their line.
    pub checked: usize,
    /// Listed files allowed to be absent (a package pulled with some components only).
    pub partial: bool,
    /// `metadata.aggregateChecksum` of the `zarf.yaml` (empty when it has none).
    pub aggregate_checksum: String,
    /// Everything found wrong, in the order found; empty when `ok`.
    pub problems: Vec<Problem>,
}

impl Integrity {
    /// One line for people: `ok (3 files match checksums.txt, aggregate checksum matches)`, or
    /// `FAILED (2 problems)`.
    pub fn status(&self) -> String {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if self.ok {
            format!(
                "ok ({} file{} match checksums.txt, aggregate checksum matches{})",
                self.checked,
                plural(self.checked),
                if self.partial { ", partial" } else { "" }
            )
        } else {
            let n = self.problems.len();
            format!("FAILED ({n} problem{})", plural(n))
        }
    }

    /// `3 problems: a: …; b: …` for error messages (the first few, then a count).
    pub fn summary(&self) -> String {
        const SHOWN: usize = 5;
        let mut parts: Vec<String> = self
            .problems
            .iter()
            .take(SHOWN)
            .map(|p| p.to_string())
            .collect();
        if self.problems.len() > SHOWN {
            parts.push(format!("and {} more", self.problems.len() - SHOWN));
        }
        format!(
            "{} problem{}: {}",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" },
            parts.join("; ")
        )
    }
}

/// Check `files` (every file of the package: relative path → digest, `None` when not hashed) against
/// `checksums` (the bytes of `checksums.txt`, if present) and `aggregate` (`metadata.aggregateChecksum`).
/// In Zarf's order: the aggregate first, then every line; then files no line lists, apart from
/// `provenance` (a signed package's `build.provenanceFiles`). With `partial`, listed files may be absent.
pub fn verify(
    files: &BTreeMap<String, Option<Digest>>,
    checksums: Option<&[u8]>,
    aggregate: &str,
    provenance: &[String],
    partial: bool,
) -> Integrity {
    let mut out = Integrity {
        partial,
        aggregate_checksum: aggregate.to_string(),
        ..Integrity::default()
    };
    let Some(checksums) = checksums else {
        out.problems.push(Problem::MissingChecksums);
        return out;
    };
    let actual = Digest::of(checksums);
    if aggregate.is_empty() {
        out.problems.push(Problem::NoAggregate);
    } else if actual.hex() != aggregate.trim_start_matches("sha256:") {
        out.problems.push(Problem::AggregateMismatch {
            expected: aggregate.to_string(),
            actual: actual.hex().to_string(),
        });
    }
    let text = String::from_utf8_lossy(checksums);
    let mut listed: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((hex, rel)) = line.split_once(' ').filter(|(h, r)| {
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) && !r.is_empty()
        }) else {
            out.problems.push(Problem::InvalidLine {
                line: i + 1,
                text: line.to_string(),
            });
            continue;
        };
        listed.insert(rel);
        match files.get(rel) {
            None if partial => {}
            None => out.problems.push(Problem::Missing {
                path: rel.to_string(),
            }),
            // Not hashed (verification skipped for it): nothing to compare.
            Some(None) => {}
            Some(Some(d)) if d.hex().eq_ignore_ascii_case(hex) => out.checked += 1,
            Some(Some(d)) => out.problems.push(Problem::Mismatch {
                path: rel.to_string(),
                expected: hex.to_string(),
                actual: d.hex().to_string(),
            }),
        }
    }
    for rel in files.keys() {
        if !is_unlisted(rel) && !listed.contains(rel.as_str()) && !provenance.contains(rel) {
            out.problems.push(Problem::Unexpected { path: rel.clone() });
        }
    }
    out.ok = out.problems.is_empty();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line() {
        let mut i = Integrity {
            ok: true,
            checked: 1,
            partial: true,
            aggregate_checksum: String::new(),
            problems: Vec::new(),
        };
        assert_eq!(
            i.status(),
            "ok (1 file match checksums.txt, aggregate checksum matches, partial)"
        );
        i.ok = false;
        assert_eq!(i.status(), "FAILED (0 problems)");
    }

    fn files(entries: &[(&str, &[u8])]) -> BTreeMap<String, Digest> {
        entries
            .iter()
            .map(|(p, b)| (p.to_string(), Digest::of(b)))
            .collect()
    }

    #[test]
    fn render_sorts_and_skips_unlisted_files() {
        let f = files(&[
            ("zarf.yaml", b"y"),
            ("checksums.txt", b"c"),
            ("zarf.yaml.sig", b"s"),
            ("components/b.tar", b"b"),
            ("images/index.json", b"i"),
            ("components/a.tar", b"a"),
        ]);
        let text = render(&f);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(lines, sorted);
        assert!(text.ends_with('\n') && !text.contains("zarf.yaml"));
        assert!(lines.iter().any(|l| l.ends_with(" components/a.tar")));
    }

    #[test]
    fn verify_reports_each_kind_of_problem() {
        let good = files(&[("a", b"a"), ("b", b"b"), ("zarf.yaml", b"y")]);
        let text = render(&good);
        let agg = Digest::of(text.as_bytes()).hex().to_string();
        let as_opt = |m: &BTreeMap<String, Digest>| {
            m.iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect::<BTreeMap<_, _>>()
        };
        let ok = verify(&as_opt(&good), Some(text.as_bytes()), &agg, &[], false);
        assert!(ok.ok && ok.checked == 2, "{ok:?}");

        let mut bad = as_opt(&good);
        bad.insert("a".into(), Some(Digest::of(b"edited")));
        bad.remove("b");
        bad.insert("extra".into(), Some(Digest::of(b"x")));
        let r = verify(&bad, Some(text.as_bytes()), "0000", &[], false);
        assert!(!r.ok);
        let kinds: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        assert!(kinds[0].contains("aggregateChecksum"), "{kinds:?}");
        assert!(
            kinds.iter().any(|k| k.starts_with("a: content hashes")),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|k| k.starts_with("b: listed")),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|k| k.starts_with("extra: in the package")),
            "{kinds:?}"
        );
        assert!(r.summary().starts_with("4 problems: "), "{}", r.summary());

        // Partial: absent files are fine, present ones still checked.
        let mut part = as_opt(&good);
        part.remove("b");
        assert!(verify(&part, Some(text.as_bytes()), &agg, &[], true).ok);
        assert_eq!(
            verify(&part, None, &agg, &[], true).problems,
            vec![Problem::MissingChecksums]
        );
        // A signed package's provenance files are not expected in the list.
        let mut signed = as_opt(&good);
        signed.insert("extra.json".into(), Some(Digest::of(b"p")));
        assert!(!verify(&signed, Some(text.as_bytes()), &agg, &[], false).ok);
        assert!(
            verify(
                &signed,
                Some(text.as_bytes()),
                &agg,
                &["extra.json".into()],
                false
            )
            .ok
        );
        let r = verify(&as_opt(&good), Some(b"nonsense\n"), "", &[], false);
        assert!(r.problems.contains(&Problem::NoAggregate));
        assert!(matches!(
            r.problems[1],
            Problem::InvalidLine { line: 1, .. }
        ));
    }
}
