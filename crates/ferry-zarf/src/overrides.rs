//! `--registry-override SRC=DST` (zarf-compat §5): where an image's bytes are fetched from, never the name
//! it is recorded under.

use ferry_oci::{Reference, ReferenceError};

/// A bad `--registry-override` or what it makes of a reference.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// An argument that is not `SRC=DST` with both sides non-empty; holds the argument.
    #[error(
        "invalid --registry-override {0:?}: expected SRC=DST, e.g. docker.io=mirror.local:5000"
    )]
    Syntax(String),
    /// Rewriting a reference's registry gives something that is not a reference.
    #[error("--registry-override {src}={dst} turns {reference} into an invalid reference")]
    Rewrite {
        /// The override's source prefix.
        src: String,
        /// Its replacement.
        dst: String,
        /// The reference rewritten.
        reference: String,
        /// Why the result is not a reference.
        #[source]
        source: Box<ReferenceError>,
    },
}

/// `SRC=DST` pairs, in the order given; a trailing `/` on DST is dropped.
pub fn parse_overrides(raw: &[String]) -> Result<Vec<(String, String)>, OverrideError> {
    raw.iter()
        .map(|o| match o.split_once('=') {
            Some((src, dst)) if !src.is_empty() && !dst.is_empty() => {
                Ok((src.to_string(), dst.trim_end_matches('/').to_string()))
            }
            _ => Err(OverrideError::Syntax(o.clone())),
        })
        .collect()
}

/// Zarf's rule: the first override whose SRC is a string prefix of the normalized reference replaces that
/// prefix with DST. No match leaves the reference as it is.
pub fn apply_override(
    reference: &Reference,
    overrides: &[(String, String)],
) -> Result<Reference, OverrideError> {
    let full = reference.to_string();
    for (src, dst) in overrides {
        if let Some(rest) = full.strip_prefix(src.as_str()) {
            return format!("{dst}{rest}")
                .parse::<Reference>()
                .map_err(|source| OverrideError::Rewrite {
                    src: src.clone(),
                    dst: dst.clone(),
                    reference: full.clone(),
                    source: Box::new(source),
                });
        }
    }
    Ok(reference.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_prefix_match_wins() {
        let o = parse_overrides(&[
            "docker.io/library=mirror:5000/lib".into(),
            "docker.io=mirror:5000/".into(),
        ])
        .unwrap();
        assert_eq!(o[1].1, "mirror:5000", "a trailing / is dropped");
        let r: Reference = "nginx:1.25".parse().unwrap();
        assert_eq!(
            apply_override(&r, &o).unwrap().to_string(),
            "mirror:5000/lib/nginx:1.25"
        );
        let r: Reference = "zarf-dev/agent:1".parse().unwrap();
        assert_eq!(
            apply_override(&r, &o).unwrap().to_string(),
            "mirror:5000/zarf-dev/agent:1"
        );
        let r: Reference =
            "ghcr.io/x/y@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79"
                .parse()
                .unwrap();
        assert_eq!(apply_override(&r, &o).unwrap(), r, "no match: unchanged");
    }

    #[test]
    fn bad_overrides_are_named() {
        for bad in ["nonsense", "=x", "x="] {
            let e = parse_overrides(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("SRC=DST"), "{e}");
        }
        let o = parse_overrides(&["docker.io=UPPER CASE".into()]).unwrap();
        let r: Reference = "nginx".parse().unwrap();
        let e = apply_override(&r, &o).unwrap_err();
        assert!(
            e.to_string().contains("docker.io/library/nginx:latest"),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
