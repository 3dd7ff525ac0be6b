//! `list_tags` (pages through `crate::listing`) and the `Link: <…>; rel="next"` parser every paginated
//! listing uses.

use crate::error::RegistryError;
use crate::repository::Repository;

/// Page size asked for; registries may return fewer and link to the next page.
const PAGE: usize = 1000;

impl Repository {
    /// Every tag, in the order the registry returns them, a large page at a time.
    pub async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        self.list_tags_paged(Some(PAGE)).await
    }
}

/// `</v2/x/tags/list?last=a&n=2>; rel="next"` → `/v2/x/tags/list?last=a&n=2`.
pub(crate) fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().trim_start_matches("rel=").trim_matches('"') == "next")
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_next_links() {
        assert_eq!(
            super::next_link(r#"</v2/x/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        assert_eq!(super::next_link(r#"</a>; rel="prev""#), None);
    }
}
