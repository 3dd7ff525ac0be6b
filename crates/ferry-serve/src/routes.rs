//! The distribution API's endpoints: each request is routed from its path, answered from the catalog and
//! the store, and logged.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, MAX_MANIFEST_BYTES, Manifest, media_type};
use ferry_store::StoreError;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::api_error::ApiError;
use crate::body::Body;
use crate::catalog::Catalog;
use crate::names::{valid_repository, valid_tag};
use crate::server::State;

/// Page size limit for tags and catalog listings.
const MAX_PAGE: usize = 10_000;
/// Catalog page size when the client names none (the CNCF registry's default).
const DEFAULT_CATALOG_PAGE: usize = 100;

type Answer = Result<Response<Body>, ApiError>;

/// Answer one request, and log it (`-v`).
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let mut response = match authorized(&state, &req).await {
        true => route(&state, req).await.unwrap_or_else(error_response),
        false => error_response(ApiError::unauthorized()),
    };
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    tracing::info!(
        target: "ferry::access",
        "{remote} {method} {path} {} {length} {:.1}ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    response
}

async fn authorized(state: &State, req: &Request<Incoming>) -> bool {
    match &state.auth {
        None => true,
        Some(auth) => {
            auth.check(
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
            )
            .await
        }
    }
}

fn error_response(e: ApiError) -> Response<Body> {
    let body = e.body();
    let mut r = Response::builder()
        .status(e.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len());
    if e.status == StatusCode::UNAUTHORIZED {
        r = r.header(header::WWW_AUTHENTICATE, "Basic realm=\"ferry serve\"");
    }
    r.body(Body::bytes(body)).expect("valid response")
}

/// Where a request goes, from its path (`/v2/<name>/<kind>/<rest>`; `name` may contain `/`).
enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Upload(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn parse_route(path: &str) -> Option<Route<'_>> {
    if path == "/v2" || path == "/v2/" {
        return Some(Route::Base);
    }
    let rest = path.strip_prefix("/v2/")?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    // The last marker wins: a repository may have a component called `blobs` or `manifests`.
    let found = ["/manifests/", "/blobs/uploads/", "/blobs/", "/referrers/"]
        .iter()
        .filter_map(|m| rest.rfind(m).map(|i| (i, *m)))
        .max_by_key(|(i, m)| (*i, m.len()))?;
    let (i, marker) = found;
    let (name, tail) = (&rest[..i], &rest[i + marker.len()..]);
    Some(match marker {
        "/manifests/" => Route::Manifest(name, tail),
        "/blobs/uploads/" => Route::Upload(name, tail),
        "/blobs/" => Route::Blob(name, tail),
        _ => Route::Referrers(name, tail),
    })
}

async fn route(state: &State, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    let Some(route) = parse_route(&path) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            format!("{path} is not a distribution API endpoint"),
        ));
    };
    let name = match &route {
        Route::Base | Route::Catalog => None,
        Route::Tags(n)
        | Route::Manifest(n, _)
        | Route::Upload(n, _)
        | Route::Blob(n, _)
        | Route::Referrers(n, _) => Some(*n),
    };
    if let Some(n) = name
        && !valid_repository(n)
    {
        return Err(ApiError::name_invalid(format!(
            "{n:?} is not a valid repository name"
        )));
    }
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    match route {
        Route::Base if read => Ok(json(StatusCode::OK, b"{}".to_vec(), &method)),
        Route::Catalog if read => catalog(state, &req).await,
        Route::Tags(name) if read => tags(state, name, &req).await,
        Route::Manifest(name, reference) if read => {
            get_manifest(state, name, reference, &req).await
        }
        Route::Blob(name, digest) if read => get_blob(state, name, digest, &req).await,
        Route::Referrers(name, digest) if method == Method::GET => {
            referrers(state, name, digest, &req).await
        }
        Route::Manifest(name, reference) if method == Method::PUT => {
            writable(state)?;
            put_manifest(state, name, reference, req).await
        }
        Route::Upload(name, id) => {
            writable(state)?;
            upload(state, name, id, req).await
        }
        Route::Manifest(..) | Route::Blob(..) if method == Method::DELETE => {
            Err(ApiError::unsupported(
                "ferry serve does not delete; remove images with ferry layout commands",
            ))
        }
        _ => Err(ApiError::unsupported(format!(
            "{method} {path} is not supported"
        ))),
    }
}

fn writable(state: &State) -> Result<(), ApiError> {
    match state.uploads {
        Some(_) => Ok(()),
        None => Err(ApiError::unsupported(
            "this registry is served read-only (ferry serve --writable accepts pushes into a layout)",
        )),
    }
}

fn json(status: StatusCode, body: Vec<u8>, method: &Method) -> Response<Body> {
    let len = body.len();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, len)
        .body(if method == Method::HEAD {
            Body::empty()
        } else {
            Body::bytes(body)
        })
        .expect("valid response")
}

/// The query parameters, percent-decoded.
fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `n` and `last` of a paginated listing; `None` for `n` means "all" (capped).
fn page(
    q: &[(String, String)],
    default: Option<usize>,
) -> Result<(usize, Option<String>), ApiError> {
    let n = match param(q, "n") {
        None => default.unwrap_or(MAX_PAGE),
        Some(v) => v.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n={v:?} is not a page size"),
            )
        })?,
    };
    Ok((n.min(MAX_PAGE), param(q, "last").map(str::to_string)))
}

/// The page of `items` after `last`, and the `Link` to the next page if there is one.
fn paginate(
    items: Vec<String>,
    n: usize,
    last: Option<&str>,
    base: &str,
) -> (Vec<String>, Option<String>) {
    let rest: Vec<String> = items
        .into_iter()
        .filter(|i| last.is_none_or(|l| i.as_str() > l))
        .collect();
    let more = rest.len() > n;
    let page: Vec<String> = rest.into_iter().take(n).collect();
    let link = match (more, page.last()) {
        (true, Some(l)) => Some(format!(
            "<{base}?n={n}&last={}>; rel=\"next\"",
            encode_query(l)
        )),
        _ => None,
    };
    (page, link)
}

fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn listing(body: serde_json::Value, link: Option<String>, method: &Method) -> Response<Body> {
    let mut r = json(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
        method,
    );
    if let Some(l) = link {
        r.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&l).expect("an encoded link is a header value"),
        );
    }
    r
}

async fn catalog(state: &State, req: &Request<Incoming>) -> Answer {
    let q = query(req);
    let (n, last) = page(&q, Some(DEFAULT_CATALOG_PAGE))?;
    let cat = state.catalog().await;
    let names = cat.repositories.keys().cloned().collect();
    let (page, link) = paginate(names, n, last.as_deref(), "/v2/_catalog");
    Ok(listing(
        serde_json::json!({ "repositories": page }),
        link,
        req.method(),
    ))
}

async fn tags(state: &State, name: &str, req: &Request<Incoming>) -> Answer {
    let q = query(req);
    let (n, last) = page(&q, None)?;
    let cat = state.catalog().await;
    let Some(tags) = cat.repositories.get(name) else {
        return Err(ApiError::name_unknown(name));
    };
    let base = format!("/v2/{name}/tags/list");
    let (page, link) = paginate(tags.keys().cloned().collect(), n, last.as_deref(), &base);
    Ok(listing(
        serde_json::json!({ "name": name, "tags": page }),
        link,
        req.method(),
    ))
}

/// What a manifest reference names: a tag in the catalog, or a digest the source holds.
async fn find_manifest(
    state: &State,
    cat: &Catalog,
    name: &str,
    reference: &str,
) -> Result<Descriptor, ApiError> {
    if let Ok(digest) = reference.parse::<Digest>() {
        if let Some(k) = cat
            .known(&digest)
            .filter(|k| media_type::is_manifest_like(&k.media_type))
        {
            return Ok(Descriptor::new(k.media_type.clone(), digest, k.size));
        }
        // Not reached from the index (pushed by digest, or in the cache): its own bytes say what it is.
        let unknown = || ApiError::manifest_unknown(format!("manifest {digest} is not in {name}"));
        let size = state
            .backing
            .probe(&digest)
            .filter(|s| *s <= MAX_MANIFEST_BYTES)
            .ok_or_else(unknown)?;
        let sniff = Descriptor::new("", digest.clone(), size);
        let bytes = state
            .backing
            .store()
            .fetch_manifest(&sniff)
            .await
            .map_err(|_| unknown())?;
        let m = Manifest::parse("", &bytes).map_err(|_| unknown())?;
        return Ok(Descriptor::new(m.media_type, digest, size));
    }
    if !valid_tag(reference) {
        return Err(ApiError::manifest_unknown(format!(
            "{reference:?} is neither a tag nor a digest"
        )));
    }
    let tags = cat
        .repositories
        .get(name)
        .ok_or_else(|| ApiError::name_unknown(name))?;
    tags.get(reference).map(|t| t.desc.clone()).ok_or_else(|| {
        ApiError::manifest_unknown(format!("{name}:{reference} is not in this registry"))
    })
}

async fn get_manifest(
    state: &State,
    name: &str,
    reference: &str,
    req: &Request<Incoming>,
) -> Answer {
    let cat = state.catalog().await;
    let desc = find_manifest(state, &cat, name, reference).await?;
    if !accepts(req.headers(), &desc.media_type) {
        return Err(ApiError::manifest_unknown(format!(
            "{name}:{reference} is a {}, which this client does not accept (Accept: {})",
            desc.media_type,
            accept_list(req.headers()).join(", ")
        )));
    }
    let bytes = state
        .backing
        .store()
        .fetch_manifest(&desc)
        .await
        .map_err(|e| stored_error(&e, "manifest", &desc.digest))?;
    let r = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, &desc.media_type)
        .header(header::CONTENT_LENGTH, bytes.len())
        .header("Docker-Content-Digest", desc.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", desc.digest));
    Ok(r.body(if req.method() == Method::HEAD {
        Body::empty()
    } else {
        Body::bytes(bytes)
    })
    .expect("valid response"))
}

/// A stored object that cannot be served: missing is the client's 404, anything else (corrupt, unreadable)
/// is this server's fault and logged.
fn stored_error(e: &StoreError, what: &str, digest: &Digest) -> ApiError {
    match e {
        StoreError::NotFound { .. } if what == "manifest" => {
            ApiError::manifest_unknown(e.to_string())
        }
        StoreError::NotFound { .. } => ApiError::blob_unknown(e.to_string()),
        _ => {
            tracing::error!("cannot serve {what} {digest}: {e}");
            ApiError::internal(format!("{what} {digest} cannot be served: {e}"))
        }
    }
}

fn accept_list(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| media_type::essence(t.trim()).to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether the client accepts `media_type`. No `Accept` header accepts anything (curl); a list that names
/// neither the type nor a wildcard does not, as the CNCF registry answers clients without OCI support.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let list = accept_list(headers);
    list.is_empty()
        || list
            .iter()
            .any(|t| t == media_type || t == "*/*" || t == "application/*")
}

async fn get_blob(state: &State, name: &str, digest: &str, req: &Request<Incoming>) -> Answer {
    let digest = digest
        .parse::<Digest>()
        .map_err(|e| ApiError::digest_invalid(format!("{digest:?}: {e}")))?;
    let cat = state.catalog().await;
    let unknown = || ApiError::blob_unknown(format!("blob {digest} is not in {name}"));
    let desc = match cat.known(&digest) {
        Some(k) => Descriptor::new(k.media_type.clone(), digest.clone(), k.size),
        None => Descriptor::new(
            "",
            digest.clone(),
            state.backing.probe(&digest).ok_or_else(unknown)?,
        ),
    };
    drop(cat);
    let range = match req.headers().get(header::RANGE) {
        None => None,
        Some(v) => Some(parse_range(v.as_bytes(), desc.size).ok_or_else(|| {
            ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "SIZE_INVALID",
                format!(
                    "range {:?} is not a satisfiable single byte range of blob {digest} ({} bytes)",
                    String::from_utf8_lossy(v.as_bytes()),
                    desc.size
                ),
            )
        })?),
    };
    state
        .verified
        .ensure(&state.backing, &desc)
        .await
        .map_err(|e| stored_error(&e, "blob", &digest))?;
    let (start, len) = range.unwrap_or((0, desc.size));
    let mut r = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""));
    r = match range {
        Some(_) => r.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", start + len - 1, desc.size),
        ),
        None => r.status(StatusCode::OK),
    };
    if req.method() == Method::HEAD || len == 0 {
        return Ok(r.body(Body::empty()).expect("valid response"));
    }
    let (source, from) = state
        .backing
        .store()
        .fetch_blob(&desc, start)
        .await
        .map_err(|e| stored_error(&e, "blob", &digest))?;
    if from != start {
        return Err(ApiError::internal(format!(
            "{} cannot read blob {digest} from byte {start}",
            state.backing.describe()
        )));
    }
    Ok(r.body(Body::stream(source, len, format!("blob {digest}")))
        .expect("valid response"))
}

/// One `bytes=` range within `size`: `a-b`, `a-` or `-suffix`, as (start, length). Several ranges, an
/// empty one or one past the end are refused.
fn parse_range(value: &[u8], size: u64) -> Option<(u64, u64)> {
    let spec = std::str::from_utf8(value)
        .ok()?
        .trim()
        .strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n = num(suffix)?.min(size);
            (size.checked_sub(n)?, size.checked_sub(1)?)
        }
        (a, "") => (num(a)?, size.checked_sub(1)?),
        (a, b) => (num(a)?, num(b)?.min(size.checked_sub(1)?)),
    };
    (start <= end && start < size).then(|| (start, end - start + 1))
}

async fn referrers(state: &State, name: &str, digest: &str, req: &Request<Incoming>) -> Answer {
    let digest = digest
        .parse::<Digest>()
        .map_err(|e| ApiError::digest_invalid(format!("{digest:?}: {e}")))?;
    let q = query(req);
    let wanted = param(&q, "artifactType");
    let cat = state.catalog().await;
    let _ = name;
    let manifests: Vec<&Descriptor> = cat
        .referrers
        .get(&digest)
        .map(|list| {
            list.iter()
                .filter(|d| wanted.is_none_or(|w| d.artifact_type.as_deref() == Some(w)))
                .collect()
        })
        .unwrap_or_default();
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("json");
    let mut r = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_type::OCI_INDEX)
        .header(header::CONTENT_LENGTH, body.len());
    if wanted.is_some() {
        r = r.header("OCI-Filters-Applied", "artifactType");
    }
    Ok(r.body(Body::bytes(body)).expect("valid response"))
}

// ---------------------------------------------------------------------------------------------
// Writes.

async fn upload(state: &State, name: &str, id: &str, req: Request<Incoming>) -> Answer {
    let uploads = state.uploads.as_ref().expect("checked writable");
    let q = query(&req);
    let method = req.method().clone();
    let digest_param = |q: &[(String, String)]| -> Result<Option<Digest>, ApiError> {
        param(q, "digest")
            .map(|d| {
                d.parse::<Digest>()
                    .map_err(|e| ApiError::digest_invalid(format!("{d:?}: {e}")))
            })
            .transpose()
    };
    match (method, id) {
        (Method::POST, "") => {
            if let Some(mount) = param(&q, "mount") {
                let digest = mount
                    .parse::<Digest>()
                    .map_err(|e| ApiError::digest_invalid(format!("{mount:?}: {e}")))?;
                if let Some(size) = state.backing.probe(&digest) {
                    let desc = Descriptor::new("", digest.clone(), size);
                    if state.verified.ensure(&state.backing, &desc).await.is_ok() {
                        return Ok(created(&format!("/v2/{name}/blobs/{digest}"), &digest));
                    }
                }
                // Not here (or not intact): the spec's answer is a fresh upload session.
            }
            let digest = digest_param(&q)?;
            let id = uploads.start(name)?;
            if let Some(digest) = digest {
                uploads.finish(&id, name, &digest, req.into_body()).await?;
                return Ok(created(&format!("/v2/{name}/blobs/{digest}"), &digest));
            }
            Ok(accepted(name, &id, 0))
        }
        (_, "") => Err(ApiError::unsupported("uploads start with POST")),
        (Method::PATCH, id) => {
            let from = content_range_start(req.headers())?;
            let size = uploads.append(id, name, from, req.into_body()).await?;
            Ok(accepted(name, id, size))
        }
        (Method::PUT, id) => {
            let digest = digest_param(&q)?
                .ok_or_else(|| ApiError::digest_invalid("finishing an upload needs ?digest="))?;
            uploads.finish(id, name, &digest, req.into_body()).await?;
            Ok(created(&format!("/v2/{name}/blobs/{digest}"), &digest))
        }
        (Method::GET, id) => {
            let size = uploads.offset(id, name).await?;
            let mut r = accepted(name, id, size);
            *r.status_mut() = StatusCode::NO_CONTENT;
            Ok(r)
        }
        (Method::DELETE, id) => match uploads.cancel(id) {
            true => Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .expect("valid response")),
            false => Err(ApiError::upload_unknown(id)),
        },
        (m, _) => Err(ApiError::unsupported(format!(
            "{m} on an upload is not supported"
        ))),
    }
}

/// The start of a `Content-Range: <start>-<end>` chunk header, if given.
fn content_range_start(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("");
    let spec = text
        .trim()
        .trim_start_matches("bytes ")
        .trim_start_matches("bytes=");
    let start = spec
        .split_once('-')
        .and_then(|(a, _)| a.trim().parse::<u64>().ok());
    start.map(Some).ok_or_else(|| {
        ApiError::range_invalid(format!("Content-Range {text:?} is not <start>-<end>"))
    })
}

fn accepted(name: &str, id: &str, size: u64) -> Response<Body> {
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header(header::RANGE, format!("0-{}", size.saturating_sub(1)))
        .header("Docker-Upload-UUID", id)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response")
}

fn created(location: &str, digest: &Digest) -> Response<Body> {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, location)
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response")
}

async fn put_manifest(
    state: &State,
    name: &str,
    reference: &str,
    req: Request<Incoming>,
) -> Answer {
    let layout = state.backing.layout().expect("writable means a layout");
    let tag = match reference.parse::<Digest>() {
        Ok(_) => None,
        Err(_) if valid_tag(reference) => Some(reference.to_string()),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                format!("{reference:?} is neither a tag nor a digest"),
            ));
        }
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let host = request_host(req.headers());
    let bytes = read_capped(req.into_body(), MAX_MANIFEST_BYTES).await?;
    let manifest = Manifest::parse(&content_type, &bytes)
        .map_err(|e| ApiError::manifest_invalid(format!("{name}:{reference}: {e}")))?;
    let desc = Descriptor::of(manifest.media_type.clone(), &bytes);
    if tag.is_none() && reference != desc.digest.to_string() {
        return Err(ApiError::digest_invalid(format!(
            "the manifest hashes to {}, not {reference}; nothing was stored",
            desc.digest
        )));
    }
    let cat = state.catalog().await;
    let needed = manifest
        .manifests
        .iter()
        .chain(manifest.config.iter())
        .chain(
            manifest
                .layers
                .iter()
                .filter(|l| l.urls.is_empty() && !media_type::is_non_distributable(&l.media_type)),
        );
    for d in needed {
        if cat.known(&d.digest).is_none() && state.backing.probe(&d.digest).is_none() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!(
                    "{name}:{reference} references {} which was not pushed",
                    d.digest
                ),
            ));
        }
    }
    let failed = |e: StoreError| ApiError::internal(format!("recording {name}:{reference}: {e}"));
    use ferry_store::{Tagger, WriteStore};
    layout
        .put_manifest(&desc, bytes.clone())
        .await
        .map_err(failed)?;
    match &tag {
        Some(t) => {
            // A tag already served keeps its full image name (the tag moves); a new one is named after the
            // registry the client addressed, as a pull from it would name it.
            let existing = cat
                .repositories
                .get(name)
                .and_then(|tags| tags.get(t))
                .filter(|e| {
                    ferry_oci::Reference::parse(&e.image_name)
                        .is_ok_and(|r| r.tag.as_deref() == Some(t))
                });
            let image_name = match existing {
                Some(e) => e.image_name.clone(),
                None => format!("{host}/{name}:{t}"),
            };
            layout
                .tag(&desc, bytes, &image_name)
                .await
                .map_err(failed)?;
        }
        None => layout.keep(&desc).await.map_err(failed)?,
    }
    drop(cat);
    state.invalidate().await;
    let mut r = created(
        &format!("/v2/{name}/manifests/{}", desc.digest),
        &desc.digest,
    );
    if let Some(subject) = &manifest.subject {
        r.headers_mut().insert(
            "OCI-Subject",
            HeaderValue::from_str(&subject.digest.to_string()).expect("a digest is a header value"),
        );
    }
    Ok(r)
}

/// The registry host the client addressed, if it is one; else `localhost`.
fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                && ferry_oci::Reference::parse(&format!("{h}/x:y")).is_ok_and(|r| r.registry == *h)
        })
        .unwrap_or("localhost")
        .to_string()
}

async fn read_capped(mut body: Incoming, cap: u64) -> Result<Bytes, ApiError> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::manifest_invalid(format!("reading the body: {e}")))?;
        if let Ok(chunk) = frame.into_data() {
            if out.len() as u64 + chunk.len() as u64 > cap {
                crate::upload::drain(body).await;
                return Err(ApiError::too_large(format!(
                    "a manifest is at most {cap} bytes"
                )));
            }
            out.extend_from_slice(&chunk);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(b"bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range(b"bytes=90-", 100), Some((90, 10)));
        assert_eq!(parse_range(b"bytes=-10", 100), Some((90, 10)));
        assert_eq!(parse_range(b"bytes=95-200", 100), Some((95, 5)));
        for bad in [
            "bytes=100-",
            "bytes=5-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=99999999999999999999999-",
            "bytes=0-0",
            "bytes=-0",
        ] {
            let size = if bad == "bytes=0-0" { 0 } else { 100 };
            assert_eq!(parse_range(bad.as_bytes(), size), None, "{bad}");
        }
    }

    #[test]
    fn routes_take_the_last_marker() {
        assert!(matches!(
            parse_route("/v2/a/blobs/b/manifests/latest"),
            Some(Route::Manifest("a/blobs/b", "latest"))
        ));
        assert!(matches!(
            parse_route("/v2/a/blobs/uploads/"),
            Some(Route::Upload("a", ""))
        ));
        assert!(matches!(
            parse_route("/v2/a/blobs/sha256:x"),
            Some(Route::Blob("a", "sha256:x"))
        ));
        assert!(matches!(
            parse_route("/v2/x/tags/list"),
            Some(Route::Tags("x"))
        ));
        assert!(parse_route("/v1/x").is_none());
        assert!(parse_route("/v2/x").is_none());
    }

    #[test]
    fn pages_link_to_the_next() {
        let items: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let (p, link) = paginate(items.clone(), 2, None, "/v2/_catalog");
        assert_eq!(p, ["a", "b"]);
        assert_eq!(link.unwrap(), "</v2/_catalog?n=2&last=b>; rel=\"next\"");
        let (p, link) = paginate(items, 2, Some("b"), "/v2/_catalog");
        assert_eq!(p, ["c"]);
        assert!(link.is_none());
        assert_eq!(
            percent_decode("application%2Fvnd.x%2Bjson"),
            "application/vnd.x+json"
        );
    }
}
