//! How the names in a layout become repositories and tags: `docker.io/library/nginx:1.25` is served as
//! `library/nginx:1.25` (the registry host dropped, as a mirror serves it), and with Zarf names also as
//! `library/nginx:1.25-zarf-<crc32>`, the tag Zarf's push would have given it.

use ferry_oci::Reference;

/// The longest repository name the distribution spec allows a registry to require support for.
const MAX_NAME: usize = 255;

/// A name in a layout, as served: repository, and tag unless the name pins a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Served {
    pub repository: String,
    pub tags: Vec<String>,
}

/// The repository and tags an image name is served under; `None` for a name that is not a reference (a
/// bare tag a Docker export left in `ref.name`).
pub(crate) fn served(image_name: &str, zarf_names: bool) -> Option<Served> {
    let r = Reference::parse(image_name).ok()?;
    let mut tags = Vec::new();
    if r.digest.is_none() {
        tags.push(r.tag.clone().unwrap_or_else(|| "latest".into()));
        if zarf_names {
            tags.extend(zarf_tag(&r));
        }
    }
    Some(Served {
        repository: r.repository,
        tags,
    })
}

/// A host no image is named after, so Zarf's "already transformed" rule never keeps the original name.
const ZARF_TARGET: &str = "ferry-serve.invalid";

/// The `<tag>-zarf-<crc32>` tag Zarf's push gives `r`, computed by Zarf's own naming rule.
fn zarf_tag(r: &Reference) -> Option<String> {
    ferry_zarf::push_names(r, ZARF_TARGET, false)
        .into_iter()
        .filter_map(|n| Reference::parse(&n).ok()?.tag)
        .find(|t| t.contains("-zarf-"))
}

/// Whether `name` is a repository name by the distribution spec's grammar: `/`-separated components of
/// lowercase letters and digits joined by `.`, `_`, `__` or `-`s. Nothing else (no `..`, no empty
/// component, no `%`) reaches a store.
pub(crate) fn valid_repository(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or a run of `-`, always between alphanumerics.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i >= b.len() || !alnum(b[i]) || start == 0 {
            return false;
        }
    }
    true
}

/// Whether `tag` is a tag by the distribution spec's grammar.
pub(crate) fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_served_without_their_host() {
        let s = served("docker.io/library/nginx:1.25", false).unwrap();
        assert_eq!(s.repository, "library/nginx");
        assert_eq!(s.tags, vec!["1.25"]);
        let s = served("ghcr.io/stefanprodan/podinfo:6.3.3", true).unwrap();
        assert_eq!(s.repository, "stefanprodan/podinfo");
        // Zarf's own table: the checksum is of the full name.
        assert_eq!(s.tags, vec!["6.3.3", "6.3.3-zarf-2985051089"]);
        let pinned = format!("quay.io/a/b@sha256:{}", "a".repeat(64));
        assert_eq!(served(&pinned, true).unwrap().tags, Vec::<String>::new());
        assert_eq!(served("linux", false).unwrap().repository, "library/linux");
        assert!(served("Not A Name", false).is_none());
    }

    #[test]
    fn repository_grammar() {
        for ok in ["a", "library/nginx", "a.b/c_d/e__f/g--h", "x0/9y"] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "..", "a/../b", "a//b", "/a", "a/", "A", "a.", "-a", "a___b", "a/.b", "%2e%2e",
            "a b", "a\0b",
        ] {
            assert!(!valid_repository(bad), "{bad:?}");
        }
        assert!(!valid_repository(&"a".repeat(256)));
        assert!(valid_tag("1.25-alpine_x") && valid_tag("_x"));
        assert!(!valid_tag("-x") && !valid_tag(".x") && !valid_tag("a/b") && !valid_tag(""));
    }
}
