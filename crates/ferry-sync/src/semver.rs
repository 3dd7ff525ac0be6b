//! Semantic-version constraints as `skopeo sync`'s `images-by-semver` reads them (the Masterminds/semver
//! v3 syntax): comparisons joined by `,` or spaces (AND) and `||` (OR), `X - Y` ranges, `~` / `~>`, `^`,
//! and `x`/`X`/`*` wildcards. Tags are read leniently, as skopeo does: `v1.2`, `1.2` and `1` are versions
//! (missing parts are 0); a tag that is not a version is never selected. A prerelease tag (`1.3.0-rc.1`)
//! only matches a comparison that itself names a prerelease.

use std::cmp::Ordering;
use std::fmt;

/// A version read from a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
}

impl Version {
    /// `v?MAJOR(.MINOR)?(.PATCH)?(-PRE)?(+BUILD)?`, each number at most 32 bits (as Masterminds parses
    /// them), identifiers of `[0-9A-Za-z-]` separated by dots.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let (s, build) = match s.split_once('+') {
            Some((v, b)) => (v, Some(b)),
            None => (s, None),
        };
        if build.is_some_and(|b| !identifiers_ok(b)) {
            return None;
        }
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, p),
            None => (s, ""),
        };
        if s.contains('-') && !identifiers_ok(pre) {
            return None;
        }
        let mut parts = core.split('.');
        let mut next = |required: bool| -> Option<u64> {
            match parts.next() {
                Some(p) => number(p),
                None if required => None,
                None => Some(0),
            }
        };
        let (major, minor, patch) = (next(true)?, next(false)?, next(false)?);
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
            pre: pre.to_string(),
        })
    }

    fn triple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

fn number(p: &str) -> Option<u64> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u32>().ok().map(u64::from)
}

fn identifiers_ok(s: &str) -> bool {
    s.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        self.triple()
            .cmp(&o.triple())
            .then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_pre(&self.pre, &o.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Semver §11: identifiers left to right, numbers numerically and below words, more identifiers above
/// fewer.
fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut xs = a.split('.');
    let mut ys = b.split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// How much of a comparison's version was given: `1` (minor and patch are wildcards), `1.2` (patch is),
/// `1.2.3`; `*` alone is `Any`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Given {
    Any,
    Major,
    Minor,
    Full,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Comparison {
    op: Op,
    version: Version,
    given: Given,
}

/// A parsed constraint: alternatives (`||`), each a list of comparisons that must all hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    text: String,
    any_of: Vec<Vec<Comparison>>,
}

/// A constraint that cannot be read; the message says which part.
#[derive(Debug, thiserror::Error)]
#[error("invalid semver constraint {constraint:?}: {why}")]
pub struct ConstraintError {
    /// The constraint as written.
    pub constraint: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Constraint {
    /// Parse a constraint: `||`-separated alternatives of comma- or space-separated comparisons (`>=1.2 <2`,
    /// `~1.4`, `^2`, `1.2 - 1.4`). `Err` names the part that cannot be read.
    pub fn parse(text: &str) -> Result<Constraint, ConstraintError> {
        let err = |why: String| ConstraintError {
            constraint: text.to_string(),
            why,
        };
        let mut any_of = Vec::new();
        for alternative in text.split("||") {
            let tokens = tokenize(alternative).map_err(err)?;
            let mut all = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                // `A - B` is `>= A, <= B`.
                if i + 2 < tokens.len() && tokens[i + 1] == "-" {
                    all.push(comparison(">=", &tokens[i]).map_err(err)?);
                    all.push(comparison("<=", &tokens[i + 2]).map_err(err)?);
                    i += 3;
                    continue;
                }
                let (op, version) = split_op(&tokens[i]);
                let (op, version) = if version.is_empty() {
                    // An operator written apart from its version: `>= 1.2`.
                    let next = tokens
                        .get(i + 1)
                        .ok_or_else(|| err(format!("{op:?} has no version after it")))?;
                    i += 1;
                    (op, next.as_str())
                } else {
                    (op, version)
                };
                all.push(comparison(op, version).map_err(err)?);
                i += 1;
            }
            if all.is_empty() {
                return Err(err("an empty alternative".into()));
            }
            any_of.push(all);
        }
        Ok(Constraint {
            text: text.to_string(),
            any_of,
        })
    }

    /// Whether the tag is a version this constraint admits.
    pub fn matches_tag(&self, tag: &str) -> bool {
        Version::parse(tag).is_some_and(|v| self.admits(&v))
    }

    /// Whether `v` satisfies every comparison of some alternative.
    pub fn admits(&self, v: &Version) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|c| c.admits(v)))
    }
}

/// Words of one alternative: separators are commas and whitespace; a lone `-` is kept (ranges).
fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let tokens: Vec<String> = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    for t in &tokens {
        if let Some(bad) = t
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "<>=!~^.*+-".contains(*c)))
        {
            return Err(format!("unexpected character {bad:?} in {t:?}"));
        }
    }
    Ok(tokens)
}

fn split_op(token: &str) -> (&str, &str) {
    for op in ["!=", ">=", "=>", "<=", "=<", "~>", ">", "<", "=", "~", "^"] {
        if let Some(rest) = token.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", token)
}

fn comparison(op: &str, version: &str) -> Result<Comparison, String> {
    let op = match op {
        "" | "=" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        "<" => Op::Lt,
        ">=" | "=>" => Op::Ge,
        "<=" | "=<" => Op::Le,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        other => return Err(format!("unknown operator {other:?}")),
    };
    let bad = || format!("{version:?} is not a version");
    let body = version.strip_prefix('v').unwrap_or(version);
    let (core, rest) = match body.find(['-', '+']) {
        Some(i) => (&body[..i], &body[i..]),
        None => (body, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let is_x = |p: &str| matches!(p, "x" | "X" | "*");
    // The first wildcard (or missing part) decides how much was given; what follows it is ignored.
    let given = match parts.iter().position(|p| is_x(p)).unwrap_or(parts.len()) {
        0 => Given::Any,
        1 => Given::Major,
        2 => Given::Minor,
        _ => Given::Full,
    };
    let mut numbers = [0u64; 3];
    let known = match given {
        Given::Any => 0,
        Given::Major => 1,
        Given::Minor => 2,
        Given::Full => 3,
    };
    for (i, n) in numbers.iter_mut().enumerate().take(known) {
        *n = number(parts[i]).ok_or_else(bad)?;
    }
    for p in &parts[known..] {
        if !is_x(p) && number(p).is_none() {
            return Err(bad());
        }
    }
    let text = format!("{}.{}.{}{rest}", numbers[0], numbers[1], numbers[2]);
    let version = Version::parse(&text).ok_or_else(bad)?;
    Ok(Comparison { op, version, given })
}

impl Comparison {
    fn admits(&self, v: &Version) -> bool {
        // A prerelease is only ever chosen by a comparison that asks for prereleases.
        if !v.pre.is_empty() && self.version.pre.is_empty() {
            return false;
        }
        let c = &self.version;
        let dirty = self.given != Given::Full;
        match self.op {
            Op::Eq if dirty => self.tilde(v),
            Op::Eq => v == c,
            Op::Ne => match self.given {
                Given::Full | Given::Any => v != c,
                Given::Major => v.major != c.major,
                Given::Minor => v.major != c.major || v.minor != c.minor,
            },
            Op::Gt => match self.given {
                Given::Full | Given::Any => v > c,
                // `>1` needs 2 or more; `>1.2` needs 1.3 or more.
                Given::Major => v.major > c.major,
                Given::Minor => v.major > c.major || (v.major == c.major && v.minor > c.minor),
            },
            Op::Lt => v < c,
            Op::Ge => v >= c,
            Op::Le => match self.given {
                Given::Full => v <= c,
                // `<=2.x` is `<3`; `<=2.1` is `<2.2` (and `<=*` is `<0.1`, as Masterminds reads it).
                Given::Major => v.major <= c.major,
                Given::Minor | Given::Any => {
                    v.major < c.major || (v.major == c.major && v.minor <= c.minor)
                }
            },
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }

    /// `~1.2.3` is `>=1.2.3 <1.3.0`; `~1` and `~1.x` are `>=1 <2`; `~0` and `*` admit everything.
    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if v < c {
            return false;
        }
        match self.given {
            Given::Any => true,
            // `~0.0.0` admits everything, like `*`.
            Given::Full if *c == Version::parse("0.0.0").expect("a version") => true,
            Given::Major => v.major == c.major,
            Given::Minor | Given::Full => v.major == c.major && v.minor == c.minor,
        }
    }

    /// `^1.2.3` is `>=1.2.3 <2`; below 1.0.0 the first non-zero part given is the one that must match.
    fn caret(&self, v: &Version) -> bool {
        let c = &self.version;
        if v < c {
            return false;
        }
        match self.given {
            Given::Any => true,
            _ if c.major > 0 || self.given == Given::Major => v.major == c.major,
            _ if c.minor > 0 || self.given == Given::Minor => v.major == 0 && v.minor == c.minor,
            _ => v.major == 0 && v.minor == 0 && v.patch == c.patch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(constraint: &str, yes: &[&str], no: &[&str]) {
        let c = Constraint::parse(constraint).unwrap();
        for t in yes {
            assert!(c.matches_tag(t), "{constraint:?} should admit {t}");
        }
        for t in no {
            assert!(!c.matches_tag(t), "{constraint:?} should not admit {t}");
        }
    }

    /// The examples of the Masterminds/semver README (what skopeo documents for `images-by-semver`).
    #[test]
    fn documented_examples() {
        check(
            ">= 1.2.3",
            &["1.2.3", "1.3", "v2.0.0"],
            &["1.2.2", "1.3.0-beta"],
        );
        check(
            ">= 1.2, < 3.0.0 || >= 4.2.3",
            &["1.2.0", "2.9.9", "4.2.3", "5"],
            &["1.1.9", "3.0.0", "4.2.2"],
        );
        check("1.2 - 1.4.5", &["1.2.0", "1.4.5"], &["1.1.9", "1.4.6"]);
        // `<= 4.5` admits every 4.5.x (a partial version stands for its whole range).
        check(
            "2.3.4 - 4.5",
            &["2.3.4", "4.5.0", "4.5.9"],
            &["2.3.3", "4.6.0"],
        );
        check("1.2.x", &["1.2.0", "1.2.99"], &["1.3.0", "1.1.9"]);
        check(">= 1.2.x", &["1.2.0", "7.0.0"], &["1.1.9"]);
        check("<= 2.x", &["2.99.0", "0.1.0"], &["3.0.0"]);
        check("*", &["0.0.0", "99.1.1"], &["1.0.0-rc1", "latest"]);
        check("~1.2.3", &["1.2.3", "1.2.9"], &["1.3.0", "1.2.2"]);
        check("~1", &["1.0.0", "1.9.0"], &["2.0.0", "0.9.0"]);
        check("~2.3", &["2.3.0", "2.3.7"], &["2.4.0", "2.2.9"]);
        check("~1.2.x", &["1.2.0", "1.2.5"], &["1.3.0"]);
        check("~1.x", &["1.0.0", "1.5.0"], &["2.0.0"]);
        check("^1.2.3", &["1.2.3", "1.9.0"], &["2.0.0", "1.2.2"]);
        check("^1.2.x", &["1.2.0", "1.9.0"], &["2.0.0", "1.1.0"]);
        check("^2.3", &["2.3.0", "2.9.0"], &["3.0.0", "2.2.0"]);
        check("^2.x", &["2.0.0", "2.9.0"], &["3.0.0", "1.9.9"]);
        check("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0", "0.2.2", "1.0.0"]);
        check("^0.2", &["0.2.0", "0.2.9"], &["0.3.0"]);
        check("^0.0.3", &["0.0.3"], &["0.0.4", "0.0.2"]);
        check("^0.0", &["0.0.0", "0.0.9"], &["0.1.0"]);
        check("^0", &["0.0.0", "0.9.9"], &["1.0.0"]);
        // Prereleases only when asked for.
        check(">=1.2.3-0", &["1.2.3-beta", "1.2.4"], &["1.2.2"]);
    }

    /// Forms seen in skopeo sync files and the brief.
    #[test]
    fn sync_file_forms() {
        check(">=1.2.0, <2", &["1.2.0", "1.99.0"], &["2.0.0", "1.1.0"]);
        check(">=1.2.0 <2", &["1.5.0"], &["2.0.0"]);
        check("~1.2", &["1.2.0", "1.2.5"], &["1.3.0"]);
        check("^1.2", &["1.2.0", "1.9.0"], &["2.0.0"]);
        check("1.x", &["1.0.0", "1.9.9"], &["2.0.0", "0.9.0"]);
        check(">= v0.22.0", &["v0.22.0", "0.23.1"], &["v0.21.9"]);
        check(
            "3.12 - 3.13",
            &["3.12.0", "3.13", "3.13.0"],
            &["3.14.0", "3.11"],
        );
        check("1.2.3", &["1.2.3", "v1.2.3"], &["1.2.4"]);
        check("!= 1.2.3", &["1.2.4"], &["1.2.3"]);
        check(">1.2", &["1.3.0"], &["1.2.9"]);
        check("<1.2", &["1.1.9"], &["1.2.0"]);
    }

    #[test]
    fn tags_that_are_not_versions_are_never_chosen() {
        let c = Constraint::parse(">= 0").unwrap();
        for t in [
            "latest",
            "1.2.3.4",
            "sha256-abc.sig",
            "1.2-",
            "v",
            "1..2",
            "stable-1",
        ] {
            assert!(!c.matches_tag(t), "{t}");
        }
        assert!(c.matches_tag("1.2.3+build.5"));
    }

    #[test]
    fn bad_constraints_are_refused() {
        for bad in [
            "", ">=", "> = 1", "1.2.3.4", ">= abc", "||", ">=1 ||", "~1.2.3.x", "a(b)",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prerelease_order_follows_semver() {
        let v = |s| Version::parse(s).unwrap();
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }
}
