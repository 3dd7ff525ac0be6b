//! Listing a repository's tags (`/v2/<name>/tags/list`), following the `Link` header across pages.

use reqwest::Method;
use reqwest::header::{HeaderMap, LINK};

use crate::client::{Call, body_excerpt};
use crate::error::{RegistryError, chain};
use crate::repository::Repository;

/// Page size asked for; registries may return fewer and link to the next page.
const PAGE: usize = 1000;

impl Repository {
    /// Every tag, in the order the registry returns them.
    pub async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        let scope = format!("repository:{}:pull", self.repository);
        let what = format!("tags of {}/{}", self.host.name, self.repository);
        let mut next = Some(format!("/v2/{}/tags/list?n={PAGE}", self.repository));
        let mut tags = Vec::new();
        while let Some(path) = next.take() {
            let call = Call {
                method: Method::GET,
                path,
                headers: HeaderMap::new(),
                body: None,
                scope: &scope,
                what: what.clone(),
                retry: true,
            };
            let resp = self.client.send(&self.host, &call).await?;
            let status = resp.status();
            if status.as_u16() == 404 {
                return Err(RegistryError::NotFound {
                    registry: self.host.name.clone(),
                    what,
                });
            }
            if !status.is_success() {
                return Err(RegistryError::Status {
                    registry: self.host.name.clone(),
                    what,
                    status: status.as_u16(),
                    body: body_excerpt(resp).await,
                });
            }
            next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            #[derive(serde::Deserialize)]
            struct Page {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let body = resp.bytes().await.map_err(|e| RegistryError::Transport {
                registry: self.host.name.clone(),
                what: what.clone(),
                detail: chain(&e),
            })?;
            let page: Page =
                serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                    registry: self.host.name.clone(),
                    what: what.clone(),
                    why: e.to_string(),
                })?;
            tags.extend(page.tags.unwrap_or_default());
        }
        Ok(tags)
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
