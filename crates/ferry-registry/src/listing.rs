//! Paginated listings: a registry's catalog (`/v2/_catalog`), a repository's tags, and (through [`Pages`])
//! the referrers API. All follow the `Link: <…>; rel="next"` header until the registry stops sending it;
//! a link back to any page already seen is a cycle and ends the listing with an error.

use std::collections::HashSet;

use reqwest::header::{HeaderMap, LINK};
use reqwest::{Method, Response, Url};

use crate::body::PAGE_BYTES;
use crate::client::{Call, HostState, RegistryClient};
use crate::error::RegistryError;
use crate::repository::Repository;
use crate::tags::next_link;

/// A registry that keeps linking to further pages past this many is looping, not listing.
const MAX_PAGES: usize = 100_000;

/// The pages of one listing, fetched one at a time.
pub(crate) struct Pages<'a> {
    client: &'a RegistryClient,
    host: &'a HostState,
    scope: &'a str,
    what: &'a str,
    headers: HeaderMap,
    next: Option<String>,
    /// The page fetched last: relative links are relative to it.
    current: Option<Url>,
    seen: HashSet<Url>,
}

impl<'a> Pages<'a> {
    pub fn new(
        client: &'a RegistryClient,
        host: &'a HostState,
        first: String,
        scope: &'a str,
        what: &'a str,
        headers: HeaderMap,
    ) -> Pages<'a> {
        Pages {
            client,
            host,
            scope,
            what,
            headers,
            next: Some(first),
            current: None,
            seen: HashSet::new(),
        }
    }

    /// The next page's response, whatever its status (the caller decides); None after the last page.
    pub async fn next(&mut self) -> Result<Option<Response>, RegistryError> {
        let Some(link) = self.next.take() else {
            return Ok(None);
        };
        let url = match &self.current {
            Some(current) => current
                .join(&link)
                .map_err(|e| self.protocol(format!("invalid next link {link:?}: {e}")))?,
            None => self.client.resolve(self.host, &link, self.what).await?,
        };
        if self.seen.len() >= MAX_PAGES {
            return Err(self.protocol(format!(
                "more than {MAX_PAGES} pages; the registry's next links do not end"
            )));
        }
        if !self.seen.insert(url.clone()) {
            return Err(self.protocol(format!(
                "the registry's next links loop back to {}, a page already listed",
                url.as_str()
            )));
        }
        let call = Call {
            headers: self.headers.clone(),
            ..Call::new(
                Method::GET,
                url.to_string(),
                self.scope,
                self.what.to_string(),
            )
        };
        let resp = self.client.send(self.host, &call).await?;
        if resp.status().is_success() {
            self.next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
        }
        self.current = Some(url);
        Ok(Some(resp))
    }

    fn protocol(&self, why: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.host.name.clone(),
            what: self.what.to_string(),
            why,
        }
    }
}

impl RegistryClient {
    /// Every repository of `registry` (`GET /v2/_catalog`), `page_size` at a time (`n=`; None: the
    /// registry's default, 100 for distribution).
    pub async fn catalog(
        &self,
        registry: &str,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, RegistryError> {
        let host = self.host(registry);
        let first = with_page_size("/v2/_catalog".to_string(), page_size);
        let what = format!("catalog of {registry}");
        list_pages(
            self,
            &host,
            first,
            "registry:catalog:*",
            &what,
            "repositories",
        )
        .await
    }
}

impl Repository {
    /// Every tag of the repository, `page_size` at a time (None: the registry decides the page size).
    pub async fn list_tags_paged(
        &self,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, RegistryError> {
        let first = with_page_size(format!("/v2/{}/tags/list", self.repository), page_size);
        let what = format!("tags of {}/{}", self.host.name, self.repository);
        list_pages(
            &self.client,
            &self.host,
            first,
            &self.pull_scope,
            &what,
            "tags",
        )
        .await
    }
}

fn with_page_size(path: String, page_size: Option<usize>) -> String {
    match page_size {
        Some(n) => format!("{path}?n={n}"),
        None => path,
    }
}

/// GET `first`, then every `rel="next"` link, collecting the string array under `key` of each page
/// (a missing or null array is an empty page).
async fn list_pages(
    client: &RegistryClient,
    host: &HostState,
    first: String,
    scope: &str,
    what: &str,
    key: &str,
) -> Result<Vec<String>, RegistryError> {
    let mut out = Vec::new();
    let mut pages = Pages::new(client, host, first, scope, what, HeaderMap::new());
    while let Some(resp) = pages.next().await? {
        let status = resp.status();
        if status.as_u16() == 404 {
            return Err(RegistryError::NotFound {
                registry: host.name.clone(),
                what: what.to_string(),
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Status {
                registry: host.name.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                body: client.body_excerpt(resp).await,
            });
        }
        let body = client
            .body(resp, &host.name, what)
            .read_capped(PAGE_BYTES, "a page of a listing")
            .await?;
        out.extend(
            page_items(&body, key).map_err(|why| RegistryError::Protocol {
                registry: host.name.clone(),
                what: what.to_string(),
                why,
            })?,
        );
    }
    Ok(out)
}

/// The strings under `key` in one page: `{"repositories":[…]}` or `{"name":…,"tags":[…]}`.
fn page_items(body: &[u8], key: &str) -> Result<Vec<String>, String> {
    let page: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    match page.get(key) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("{key}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_links() {
        assert_eq!(
            page_items(br#"{"repositories":["a","b/c"]}"#, "repositories").unwrap(),
            vec!["a", "b/c"]
        );
        assert!(
            page_items(br#"{"name":"x","tags":null}"#, "tags")
                .unwrap()
                .is_empty()
        );
        assert!(page_items(br#"{"tags":[1]}"#, "tags").is_err());
        assert!(page_items(b"<html>", "tags").is_err());
        // Distribution's catalog link, absolute links and several relations in one header.
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://r.example/v2/x/tags/list?n=2&last=t2>; rel="next""#).as_deref(),
            Some("https://r.example/v2/x/tags/list?n=2&last=t2")
        );
        assert_eq!(
            next_link(r#"</v2/_catalog?last=a>; rel="prev", </v2/_catalog?last=c>; rel="next""#)
                .as_deref(),
            Some("/v2/_catalog?last=c")
        );
        assert_eq!(
            with_page_size("/v2/_catalog".into(), Some(2)),
            "/v2/_catalog?n=2"
        );
        assert_eq!(with_page_size("/v2/_catalog".into(), None), "/v2/_catalog");
    }
}
