//! A hostile registry on 127.0.0.1: answers `/v2/` like a registry (200, or a Bearer challenge), then
//! misbehaves on purpose — endless bodies on every kind of response, `Link` cycles, bytes dripped one a
//! second — so tests can prove a client ends each with a clear error, in bounded time and memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::server::BackgroundServer;

/// What the server does to requests other than `GET /v2/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostility {
    /// HTTP 500 with a body that never ends.
    EndlessError,
    /// Requests without a token are asked for one from this server; the token response never ends.
    EndlessToken,
    /// Tags and catalog pages that never end (`{"tags":["aaaa…`).
    EndlessPage,
    /// A referrers index that never ends.
    EndlessReferrers,
    /// A manifest (no Content-Length) that never ends.
    EndlessManifest,
    /// Tags pages linking to `?page=b`, which links to `?page=a`, which links to `?page=b` (each page
    /// valid, the walk endless).
    LinkCycle,
    /// Response headers sent one byte a second.
    DripHeaders,
    /// Manifest headers at once, then the body one byte a second.
    DripBody,
    /// Requests without a token are asked for one from a plain-HTTP realm on a host that is not loopback (nothing
    /// listens there: a client that refuses to send credentials never connects).
    RemotePlainRealm,
}

/// A running hostile server; stopped on drop.
pub struct HostileServer {
    server: BackgroundServer,
    requests: Arc<AtomicUsize>,
}

/// Endless bodies are written in pieces this big.
const PIECE: usize = 64 << 10;

impl HostileServer {
    /// Start a server that behaves as `hostility` says, on a free loopback port.
    pub fn start(hostility: Hostility) -> HostileServer {
        let listener = BackgroundServer::bind("ferry-test-hostile");
        let addr = listener.local_addr().expect("hostile server address");
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let server = BackgroundServer::start("ferry-test-hostile", listener, move |stream| {
            let counter = counter.clone();
            async move {
                let _ = serve(stream, hostility, addr, &counter).await;
            }
        });
        HostileServer { server, requests }
    }

    /// `127.0.0.1:PORT`, as a registry name.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Requests on one connection until it closes: the request head is read (capped), any body ignored.
async fn serve(
    mut stream: TcpStream,
    hostility: Hostility,
    addr: SocketAddr,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    loop {
        let Some(Request { target, authorized }) = read_request(&mut stream).await? else {
            return Ok(());
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let path = target.split('?').next().unwrap_or("");
        let challenge = match hostility {
            Hostility::EndlessToken => Some(format!(
                "Bearer realm=\"http://{addr}/token\",service=\"hostile\""
            )),
            Hostility::RemotePlainRealm => {
                Some("Bearer realm=\"http://10.255.255.1:9/token\",service=\"hostile\"".into())
            }
            _ => None,
        };
        let root = path == "/v2/" || path == "/v2";
        // Token modes: like a registry, every API request without a token is challenged.
        match &challenge {
            Some(c) if path.starts_with("/v2") && (root || !authorized) => {
                respond(
                    &mut stream,
                    "401 Unauthorized",
                    &[("WWW-Authenticate", c.as_str())],
                    b"{}",
                )
                .await?;
                continue;
            }
            _ if root => {
                respond(&mut stream, "200 OK", &[], b"{}").await?;
                continue;
            }
            _ => {}
        }
        match hostility {
            Hostility::EndlessError => {
                return endless(&mut stream, "500 Internal Server Error", "text/plain", b"").await;
            }
            Hostility::EndlessToken if path == "/token" => {
                return endless(&mut stream, "200 OK", "application/json", b"{\"token\":\"").await;
            }
            Hostility::EndlessPage if path.ends_with("/tags/list") || path == "/v2/_catalog" => {
                return endless(&mut stream, "200 OK", "application/json", b"{\"tags\":[\"").await;
            }
            Hostility::EndlessReferrers if path.contains("/referrers/") => {
                return endless(
                    &mut stream,
                    "200 OK",
                    "application/vnd.oci.image.index.v1+json",
                    b"{\"schemaVersion\":2,\"manifests\":[",
                )
                .await;
            }
            Hostility::EndlessManifest if path.contains("/manifests/") => {
                return endless(
                    &mut stream,
                    "200 OK",
                    "application/vnd.oci.image.manifest.v1+json",
                    b"{\"schemaVersion\":2,\"x\":\"",
                )
                .await;
            }
            Hostility::LinkCycle if path.ends_with("/tags/list") => {
                let (this, next) = if target.contains("page=b") {
                    ("b", "a")
                } else {
                    ("a", "b")
                };
                let link = format!("<{path}?page={next}>; rel=\"next\"");
                let body = format!("{{\"name\":\"x\",\"tags\":[\"tag-{this}\"]}}");
                respond(
                    &mut stream,
                    "200 OK",
                    &[
                        ("Link", link.as_str()),
                        ("Content-Type", "application/json"),
                    ],
                    body.as_bytes(),
                )
                .await?;
            }
            Hostility::DripHeaders => {
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                for b in head {
                    stream.write_all(&[*b]).await?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Hostility::DripBody if path.contains("/manifests/") => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 100000\r\n\r\n")
                    .await?;
                loop {
                    stream.write_all(b" ").await?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            _ => {
                respond(
                    &mut stream,
                    "404 Not Found",
                    &[],
                    b"{\"errors\":[{\"code\":\"NAME_UNKNOWN\"}]}",
                )
                .await?
            }
        }
    }
}

/// The request target of the next request head, None when the client closed the connection.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 << 10 || stream.read(&mut byte).await? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text.split(' ').nth(1).map(|target| Request {
        target: target.to_string(),
        authorized: text.to_ascii_lowercase().contains("\r\nauthorization:"),
    }))
}

struct Request {
    target: String,
    authorized: bool,
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await
}

/// `start`, then `a` forever (chunked), until the client goes away.
async fn endless(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    start: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    if !start.is_empty() {
        stream
            .write_all(format!("{:x}\r\n", start.len()).as_bytes())
            .await?;
        stream.write_all(start).await?;
        stream.write_all(b"\r\n").await?;
    }
    let piece = vec![b'a'; PIECE];
    loop {
        stream
            .write_all(format!("{PIECE:x}\r\n").as_bytes())
            .await?;
        stream.write_all(&piece).await?;
        stream.write_all(b"\r\n").await?;
    }
}
