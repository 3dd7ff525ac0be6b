//! Which tags of a repository a sync takes.

use crate::semver::Constraint;

/// Which tags of a repository are taken.
#[derive(Clone, Debug)]
pub enum TagFilter {
    /// Every tag (`images: {repo: []}`).
    All,
    /// Exactly these tags or digests, in order; nothing is listed.
    Listed(Vec<String>),
    /// Tags the expression matches anywhere (Go's `MatchString`, as skopeo uses; anchor it with `^…$`).
    Regex(regex_lite::Regex),
    /// Tags that read as versions admitted by the constraint.
    Semver(Constraint),
}

impl TagFilter {
    /// Whether listing the repository's tags is needed.
    pub fn needs_listing(&self) -> bool {
        !matches!(self, TagFilter::Listed(_))
    }

    /// Whether `tag` is taken.
    pub fn admits(&self, tag: &str) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Listed(refs) => refs.iter().any(|r| r == tag),
            TagFilter::Regex(re) => re.is_match(tag),
            TagFilter::Semver(c) => c.matches_tag(tag),
        }
    }

    /// The references to take: the listed ones, or the listed tags this filter admits, in listing order.
    pub fn select(&self, listed: &[String]) -> Vec<String> {
        match self {
            TagFilter::Listed(refs) => refs.clone(),
            _ => listed.iter().filter(|t| self.admits(t)).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_matches_anywhere_unless_anchored() {
        let tags: Vec<String> = [
            "1.13.1-alpine-perl",
            "1.13.2-alpine-perl",
            "x1.13.1-alpine-perl",
            "1.13.3",
        ]
        .map(String::from)
        .to_vec();
        let anchored =
            TagFilter::Regex(regex_lite::Regex::new(r"^1\.13\.[12]-alpine-perl$").unwrap());
        assert_eq!(
            anchored.select(&tags),
            ["1.13.1-alpine-perl", "1.13.2-alpine-perl"]
        );
        let loose = TagFilter::Regex(regex_lite::Regex::new(r"1\.13\.[12]").unwrap());
        assert_eq!(loose.select(&tags).len(), 3);
        // RE2 syntax the sync files use: classes, alternation, repetition counts.
        let re2 = TagFilter::Regex(regex_lite::Regex::new(r"^v?(1|2)\.\d{1,2}(\.\d+)?$").unwrap());
        assert!(
            re2.admits("v1.10.3")
                && re2.admits("2.0")
                && !re2.admits("3.1")
                && !re2.admits("1.100")
        );
    }
}
