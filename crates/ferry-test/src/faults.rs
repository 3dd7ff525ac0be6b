//! A fault-injecting HTTP/1.1 proxy for a plain-HTTP [`crate::Registry`]: the registry itself never
//! cuts a body, throttles or resets, and ferry's retry and resume paths need all of that.
//!
//! Client connections are kept alive (reqwest pools them) unless a fault, the client or an
//! unframed response ends them. Every request gets its own upstream connection, sent with
//! `Connection: close`, so a cut or reset costs exactly one request and no upstream state carries
//! over. Bodies are streamed with their framing (Content-Length, chunked, or until close) intact.

use crate::server::BackgroundServer;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt as _, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
    BufReader,
};
use tokio::net::TcpStream;

const MAX_HEAD: usize = 64 * 1024;
const MAX_LINE: usize = 8 * 1024;
const BUFFER: usize = 64 * 1024;
/// Headers that describe one connection and must not be relayed (RFC 9110 §7.6.1), plus `Expect`,
/// which the proxy answers itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "expect",
];

/// What to do to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request but close the connection after `after` bytes of the response body. A
    /// body no longer than `after` goes through whole and does not count as injected.
    CutBody {
        /// Bytes of the body sent before the cut.
        after: u64,
    },
    /// Answer with this status (and optional Retry-After header value) without forwarding.
    Status {
        /// The status code.
        code: u16,
        /// The `Retry-After` value to send, if any.
        retry_after: Option<String>,
    },
    /// Forward the request head and the first `after` bytes of its body, then close the upstream
    /// connection (the registry sees its client vanish mid-body and keeps what arrived) and reset the
    /// client's: an upload cut on the wire. A body no longer than `after` goes through whole and does
    /// not count as injected.
    CutRequestBody {
        /// Body bytes forwarded before the cut.
        after: u64,
    },
    /// Forward the request with its Range header removed, so the upstream answers 200 with the
    /// whole body.
    IgnoreRange,
    /// Close the connection without answering (with an RST, as a crashed peer would).
    Reset,
    /// Forward, but sleep this long before sending the response head.
    Delay(Duration),
    /// Forward, but send the response body `chunk` bytes at a time with `pause` before each piece
    /// after the first.
    SlowBody {
        /// Bytes per piece.
        chunk: u64,
        /// Sleep before each piece after the first.
        pause: Duration,
    },
    /// Forward, but flip the bits of the response body byte at offset `at` (same length, wrong bytes).
    CorruptBody {
        /// Offset of the flipped byte in the body.
        at: u64,
    },
    /// Forward, but set (or replace) a response header: a lying `Docker-Content-Digest`, a
    /// `Content-Type` that is not a manifest type.
    SetHeader {
        /// The header's name.
        name: String,
        /// Its value.
        value: String,
    },
    /// Answer with exactly this status, headers and body without forwarding (an HTML error page served
    /// with 200, a captive portal), then close the connection.
    Respond {
        /// The status code.
        code: u16,
        /// Header names and values, in order.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
}

/// Which requests a rule applies to and how many times.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Any method when None; compared case-insensitively.
    pub method: Option<String>,
    /// Substring of the path-and-query; empty matches everything.
    pub path_contains: String,
    /// What to do to a matching request.
    pub fault: Fault,
    /// How many more matching requests get the fault; a rule at 0 matches nothing.
    pub times: usize,
}

impl Rule {
    /// A rule for the next `times` requests with `method` (any when `None`) whose path and query contain
    /// `path_contains`.
    pub fn new(method: Option<&str>, path_contains: &str, fault: Fault, times: usize) -> Rule {
        Rule {
            method: method.map(str::to_string),
            path_contains: path_contains.to_string(),
            fault,
            times,
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.contains(&self.path_contains)
    }
}

/// One request the proxy received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The request method.
    pub method: String,
    /// Path and query as the client sent them.
    pub path: String,
    /// The client's Range header (also when [`Fault::IgnoreRange`] kept it from the upstream).
    pub range: Option<String>,
    /// Status answered; 0 when the connection was cut or reset, or while still in progress.
    pub status: u16,
    /// `Debug` of the fault injected into this request, if any.
    pub fault: Option<String>,
    /// Whether the request carried an Authorization header (credentials must not follow a redirect to
    /// another host).
    pub authorization: bool,
    /// When the request head arrived (request rates are measured from these).
    pub at: std::time::Instant,
}

struct State {
    upstream: String,
    /// `http://` + the proxy's own host:port, what upstream `Location`s are rewritten to.
    base_url: String,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    injected: AtomicUsize,
}

impl State {
    fn record(&self, seen: Seen) -> usize {
        let mut all = self.seen.lock().expect("seen lock");
        all.push(seen);
        all.len() - 1
    }

    /// Called before the client can observe the outcome (before the head is written or the
    /// connection dropped), so a test that just got its answer always finds it recorded.
    fn update(&self, index: usize, status: u16, fault: Option<&Fault>) {
        let mut all = self.seen.lock().expect("seen lock");
        all[index].status = status;
        if let Some(fault) = fault {
            all[index].fault = Some(format!("{fault:?}"));
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().expect("rules lock");
        let rule = rules.iter_mut().find(|r| r.matches(method, path))?;
        rule.times -= 1;
        Some(rule.fault.clone())
    }
}

/// HTTP/1.1 proxy on 127.0.0.1 in front of a plain-HTTP upstream, injecting [`Fault`]s by [`Rule`].
/// Runs on its own thread and runtime (like the token server) so it serves `#[test]` and
/// `#[tokio::test]` alike; stopped on Drop.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    /// Stops the proxy (and drops its connections) when the FaultProxy is dropped.
    _server: BackgroundServer,
}

impl FaultProxy {
    /// Proxy to `upstream` ("127.0.0.1:PORT", plain HTTP). Listens on 127.0.0.1:0.
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = BackgroundServer::bind("ferry-test-fault-proxy");
        let addr = listener.local_addr().expect("fault proxy address");
        let upstream = upstream.strip_prefix("http://").unwrap_or(upstream);
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            base_url: format!("http://{addr}"),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            injected: AtomicUsize::new(0),
        });
        let thread_state = state.clone();
        let server = BackgroundServer::start("ferry-test-fault-proxy", listener, move |stream| {
            serve(stream, thread_state.clone())
        });
        FaultProxy {
            addr,
            state,
            _server: server,
        }
    }

    /// "127.0.0.1:PORT" of the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Adds a rule: the next `times` matching requests get its fault. Rules are checked in
    /// insertion order; a rule with `times` used up no longer matches.
    pub fn add(&self, rule: Rule) {
        self.state.rules.lock().expect("rules lock").push(rule);
    }

    /// Every request seen, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("seen lock").clone()
    }

    /// How many times faults were injected.
    pub fn injected(&self) -> usize {
        self.state.injected.load(Ordering::SeqCst)
    }
}

/// A request or response head: start line and headers in their original order and spelling.
#[derive(Debug)]
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> Option<Head> {
        let text = String::from_utf8_lossy(raw);
        let mut lines = text.lines();
        let start = lines.next()?.trim_end().to_string();
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l.split_once(':')?;
                Some((name.trim().to_string(), value.trim().to_string()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Head { start, headers })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.headers.push((name.to_string(), value.into()));
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// The status code of a response head.
    fn status(&self) -> Option<u16> {
        self.start.split_whitespace().nth(1)?.parse().ok()
    }
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn request_body(head: &Head) -> io::Result<Body> {
    if head.get("transfer-encoding").is_some() {
        // A request body that is not chunked has no length at all (RFC 9112 §6.3).
        return if head.has_token("transfer-encoding", "chunked") {
            Ok(Body::Chunked)
        } else {
            Err(invalid("request transfer-coding without chunked"))
        };
    }
    match head.get("content-length") {
        Some(len) => len
            .parse()
            .map(Body::Length)
            .map_err(|_| invalid("bad content-length")),
        None => Ok(Body::Empty),
    }
}

fn response_body(head: &Head, to_head: bool, status: u16) -> Body {
    if to_head || matches!(status, 100..=199 | 204 | 304) {
        Body::Empty
    } else if head.get("transfer-encoding").is_some() {
        if head.has_token("transfer-encoding", "chunked") {
            Body::Chunked
        } else {
            Body::UntilClose
        }
    } else {
        match head.get("content-length").map(str::parse) {
            Some(Ok(len)) => Body::Length(len),
            _ => Body::UntilClose,
        }
    }
}

/// One line including its `\n`; empty at EOF.
async fn read_line<R: AsyncBufRead + Unpin>(from: &mut R, cap: usize) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    (&mut *from)
        .take(cap as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if !line.is_empty() && !line.ends_with(b"\n") {
        return Err(if line.len() >= cap {
            invalid("line too long")
        } else {
            io::ErrorKind::UnexpectedEof.into()
        });
    }
    Ok(line)
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\r\n" || line == b"\n"
}

/// Reads a head through its empty line; None on EOF before one starts (an idle connection closed).
async fn read_head<R: AsyncBufRead + Unpin>(from: &mut R) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let room = MAX_HEAD.saturating_sub(raw.len());
        if room == 0 {
            return Err(invalid("head too large"));
        }
        let line = read_line(from, room).await?;
        if line.is_empty() {
            return if raw.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        // Stray CRLFs between messages are allowed (RFC 9112 §2.2).
        if raw.is_empty() && is_blank(&line) {
            continue;
        }
        let done = is_blank(&line);
        raw.extend_from_slice(&line);
        if done {
            return Head::parse(&raw)
                .map(Some)
                .ok_or_else(|| invalid("bad head"));
        }
    }
}

/// Payload accounting for one body: bytes sent so far, where to cut, how to pace.
#[derive(Default)]
struct Copier {
    sent: u64,
    cut_after: Option<u64>,
    pace: Option<(u64, Duration)>,
    corrupt_at: Option<u64>,
}

impl Copier {
    /// Copies `len` payload bytes, or everything until EOF when None. False when the cut stopped it
    /// with payload left over.
    async fn payload<R, W>(
        &mut self,
        from: &mut R,
        to: &mut W,
        len: Option<u64>,
    ) -> io::Result<bool>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut left = len;
        loop {
            if left == Some(0) {
                return Ok(true);
            }
            let buf = from.fill_buf().await?;
            if buf.is_empty() {
                return match left {
                    None => Ok(true),
                    Some(_) => Err(io::ErrorKind::UnexpectedEof.into()),
                };
            }
            let mut take = buf.len() as u64;
            if let Some(left) = left {
                take = take.min(left);
            }
            if let Some(after) = self.cut_after {
                // Checked after fill_buf so that an until-close body ending exactly here is whole.
                let room = after.saturating_sub(self.sent);
                if room == 0 {
                    return Ok(false);
                }
                take = take.min(room);
            }
            if let Some((chunk, pause)) = self.pace {
                take = take.min(chunk.max(1));
                if self.sent > 0 {
                    tokio::time::sleep(pause).await;
                }
            }
            // `take` never exceeds buf.len(), so it fits in usize.
            let take = take as usize;
            let buf = from.fill_buf().await?;
            match self.corrupt_at {
                Some(at) if (self.sent..self.sent + take as u64).contains(&at) => {
                    let mut piece = buf[..take].to_vec();
                    piece[(at - self.sent) as usize] ^= 0xff;
                    to.write_all(&piece).await?;
                }
                _ => to.write_all(&buf[..take]).await?,
            }
            from.consume(take);
            self.sent += take as u64;
            if let Some(left) = &mut left {
                *left -= take as u64;
            }
        }
    }

    /// Relays one body as-is (chunk framing and trailers included), counting payload bytes only.
    /// False when cut.
    async fn body<R, W>(&mut self, from: &mut R, to: &mut W, body: Body) -> io::Result<bool>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        match body {
            Body::Empty => Ok(true),
            Body::Length(len) => self.payload(from, to, Some(len)).await,
            Body::UntilClose => self.payload(from, to, None).await,
            Body::Chunked => loop {
                let line = read_line(from, MAX_LINE).await?;
                if line.is_empty() {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let size = String::from_utf8_lossy(&line);
                let size = size.split(';').next().unwrap_or_default().trim();
                let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
                if size == 0 {
                    to.write_all(&line).await?;
                    // Trailer fields, then the empty line that ends the body.
                    loop {
                        let line = read_line(from, MAX_LINE).await?;
                        if line.is_empty() {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        to.write_all(&line).await?;
                        if is_blank(&line) {
                            return Ok(true);
                        }
                    }
                }
                if self.cut_after.is_some_and(|after| self.sent >= after) {
                    return Ok(false);
                }
                to.write_all(&line).await?;
                if !self.payload(from, to, Some(size)).await? {
                    return Ok(false);
                }
                let end = read_line(from, MAX_LINE).await?;
                if !is_blank(&end) {
                    return Err(invalid("chunk not followed by CRLF"));
                }
                to.write_all(&end).await?;
            },
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    }
}

/// A distribution-style error answer made up by the proxy.
fn made_up(
    code: u16,
    retry_after: Option<&str>,
    to_head: bool,
    close: bool,
    message: &str,
) -> Vec<u8> {
    let error_code = match code {
        401 => "UNAUTHORIZED",
        403 => "DENIED",
        404 => "NOT_FOUND",
        429 => "TOOMANYREQUESTS",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    let body = json!({"errors": [{"code": error_code, "message": message}]}).to_string();
    let no_body = matches!(code, 204 | 304);
    let mut out = format!("HTTP/1.1 {code} {}\r\n", reason(code));
    if !no_body {
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    if let Some(value) = retry_after {
        out.push_str(&format!("Retry-After: {value}\r\n"));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    if !(to_head || no_body) {
        out.push_str(&body);
    }
    out.into_bytes()
}

/// Path-and-query of a request target, also from the absolute form clients use with proxies.
fn origin_form(target: &str) -> &str {
    match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    }
}

enum Next {
    KeepAlive,
    Close,
    Reset,
}

async fn serve(stream: TcpStream, state: Arc<State>) {
    // Chunk framing goes out in small writes; Nagle would hold them back.
    let _ = stream.set_nodelay(true);
    let mut client = BufReader::with_capacity(BUFFER, stream);
    loop {
        let next = match read_head(&mut client).await {
            Ok(Some(head)) => exchange(&mut client, head, &state).await,
            Ok(None) => return,
            Err(_) => {
                let response = made_up(400, None, false, true, "malformed request");
                let _ = client.get_mut().write_all(&response).await;
                Next::Close
            }
        };
        match next {
            Next::KeepAlive => {}
            Next::Close => {
                let _ = client.get_mut().shutdown().await;
                return;
            }
            Next::Reset => {
                // Zero linger turns the close into an RST.
                let _ = client.get_ref().set_zero_linger();
                return;
            }
        }
    }
}

/// One request and its answer on a client connection.
async fn exchange(client: &mut BufReader<TcpStream>, mut head: Head, state: &State) -> Next {
    let mut start = head.start.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (start.next(), start.next(), start.next())
    else {
        let response = made_up(400, None, false, true, "malformed request line");
        let _ = client.get_mut().write_all(&response).await;
        return Next::Close;
    };
    let (method, path) = (method.to_string(), origin_form(target).to_string());
    let mut close = version == "HTTP/1.0" || head.has_token("connection", "close");
    let to_head = method.eq_ignore_ascii_case("HEAD");
    let Ok(request_body) = request_body(&head) else {
        let response = made_up(400, None, to_head, true, "unframed request body");
        let _ = client.get_mut().write_all(&response).await;
        return Next::Close;
    };
    let expects_continue = head
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let index = state.record(Seen {
        method: method.clone(),
        path: path.clone(),
        range: head.get("range").map(str::to_string),
        status: 0,
        fault: None,
        authorization: head.get("authorization").is_some(),
        at: std::time::Instant::now(),
    });
    let fault = state.take_fault(&method, &path);

    match &fault {
        Some(Fault::Reset) => {
            state.update(index, 0, fault.as_ref());
            return Next::Reset;
        }
        Some(Fault::Status { code, retry_after }) => {
            // Reading the body keeps the connection usable for the next request; a client waiting
            // for 100-continue may never send it, so that connection is closed instead.
            if expects_continue {
                close = true;
            } else if Copier::default()
                .body(client, &mut tokio::io::sink(), request_body)
                .await
                .is_err()
            {
                return Next::Close;
            }
            state.update(index, *code, fault.as_ref());
            let response = made_up(
                *code,
                retry_after.as_deref(),
                to_head,
                close,
                "injected by ferry-test FaultProxy",
            );
            let written = client.get_mut().write_all(&response).await.is_ok();
            return if written && !close {
                Next::KeepAlive
            } else {
                Next::Close
            };
        }
        Some(Fault::Respond {
            code,
            headers,
            body,
        }) => {
            state.update(index, *code, fault.as_ref());
            let mut out = format!("HTTP/1.1 {code} {}\r\n", reason(*code));
            let has_length = headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
            for (n, v) in headers {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
            if !has_length {
                out.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            out.push_str("Connection: close\r\n\r\n");
            let mut bytes = out.into_bytes();
            if !to_head {
                bytes.extend_from_slice(body);
            }
            let _ = client.get_mut().write_all(&bytes).await;
            return Next::Close;
        }
        _ => {}
    }

    let upstream = match TcpStream::connect(&state.upstream).await {
        Ok(upstream) => upstream,
        Err(e) => {
            state.update(index, 502, None);
            // The request body stays unread, so this connection cannot carry another request.
            let message = format!("upstream {}: {e}", state.upstream);
            let response = made_up(502, None, to_head, true, &message);
            let _ = client.get_mut().write_all(&response).await;
            return Next::Close;
        }
    };
    let _ = upstream.set_nodelay(true);
    let mut upstream = BufReader::with_capacity(BUFFER, upstream);

    if fault == Some(Fault::IgnoreRange) {
        head.remove("range");
        head.remove("if-range");
    }
    for name in HOP_BY_HOP {
        head.remove(name);
    }
    head.start = format!("{method} {path} HTTP/1.1");
    // The registry builds absolute `Location`s from Host; they are mapped back below.
    head.set("Host", state.upstream.clone());
    head.set("Connection", "close");
    if expects_continue
        && client
            .get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        return Next::Close;
    }
    let mut request_copier = Copier::default();
    if let Some(Fault::CutRequestBody { after }) = &fault {
        request_copier.cut_after = Some(*after);
    }
    let sent = async {
        upstream.get_mut().write_all(&head.encode()).await?;
        request_copier
            .body(client, upstream.get_mut(), request_body)
            .await
    }
    .await;
    if matches!(sent, Ok(false)) {
        // Cut: the upstream sees EOF mid-body; give it a moment to store what arrived before the
        // client can ask about it.
        let _ = upstream.get_mut().shutdown().await;
        drop(upstream);
        tokio::time::sleep(Duration::from_millis(200)).await;
        state.update(index, 0, fault.as_ref());
        return Next::Reset;
    }
    // The upstream may have answered without reading the whole body (a 401 to an upload): relay
    // that answer, but the rest of the client's body is still in the way of a next request.
    if sent.is_err() {
        close = true;
    }

    // Interim 1xx answers are dropped: Expect was not forwarded, so the client is not owed them.
    let (response, status) = loop {
        match read_head(&mut upstream).await {
            Ok(Some(response)) => match response.status() {
                Some(100..=199) => {}
                Some(status) => break (response, status),
                None => return bad_gateway(client, state, index, to_head, "bad status line").await,
            },
            Ok(None) => return bad_gateway(client, state, index, to_head, "no answer").await,
            Err(e) => return bad_gateway(client, state, index, to_head, &e.to_string()).await,
        }
    };
    let mut response = response;

    if let Some(Fault::Delay(pause)) = &fault {
        tokio::time::sleep(*pause).await;
    }
    let body = response_body(&response, to_head, status);
    let upstream_url = format!("http://{}", state.upstream);
    let location = response.get("location").and_then(|l| {
        let rest = l.strip_prefix(&upstream_url)?;
        (rest.is_empty() || rest.starts_with(['/', '?', '#']))
            .then(|| format!("{}{rest}", state.base_url))
    });
    if let Some(location) = location {
        response.set("Location", location);
    }
    for name in HOP_BY_HOP {
        response.remove(name);
    }
    if body == Body::UntilClose {
        close = true;
    }
    if let Some(Fault::SetHeader { name, value }) = &fault {
        response.set(name, value.clone());
        // A changed framing header makes the rest of this connection unreadable.
        close |= name.eq_ignore_ascii_case("content-length");
    }
    if close {
        response.set("Connection", "close");
    }

    let mut copier = Copier::default();
    match &fault {
        Some(Fault::CutBody { after }) => copier.cut_after = Some(*after),
        Some(Fault::SlowBody { chunk, pause }) => copier.pace = Some((*chunk, *pause)),
        Some(Fault::CorruptBody { at }) => copier.corrupt_at = Some(*at),
        _ => {}
    }
    // Whether a CutBody applies is only known once the body runs past `after`.
    let applied = match &fault {
        Some(Fault::CutBody { .. }) => None,
        other => other.as_ref(),
    };
    state.update(index, status, applied);
    if client
        .get_mut()
        .write_all(&response.encode())
        .await
        .is_err()
    {
        return Next::Close;
    }
    match copier.body(&mut upstream, client.get_mut(), body).await {
        Ok(true) if close => Next::Close,
        Ok(true) => Next::KeepAlive,
        Ok(false) => {
            state.update(index, 0, fault.as_ref());
            Next::Close
        }
        // Upstream died or the client left mid-body: either way the answer did not get through.
        Err(_) => {
            state.update(index, 0, None);
            Next::Close
        }
    }
}

async fn bad_gateway(
    client: &mut BufReader<TcpStream>,
    state: &State,
    index: usize,
    to_head: bool,
    why: &str,
) -> Next {
    state.update(index, 502, None);
    let message = format!("upstream {}: {why}", state.upstream);
    let _ = client
        .get_mut()
        .write_all(&made_up(502, None, to_head, true, &message))
        .await;
    Next::Close
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut)
    }

    async fn relay(
        input: &[u8],
        body: Body,
        cut_after: Option<u64>,
    ) -> (io::Result<bool>, Vec<u8>) {
        let mut from = input;
        let mut out = Vec::new();
        let mut copier = Copier {
            cut_after,
            ..Copier::default()
        };
        let result = copier.body(&mut from, &mut out, body).await;
        (result, out)
    }

    const CHUNKED: &[u8] = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\nNEXT";

    #[test]
    fn chunked_bodies_pass_through_with_framing_and_trailers() {
        let (result, out) = run(relay(CHUNKED, Body::Chunked, None));
        assert!(result.unwrap());
        assert_eq!(
            out,
            &CHUNKED[..CHUNKED.len() - 4],
            "stops at the end of the body"
        );
    }

    #[test]
    fn cuts_count_payload_bytes_not_framing() {
        let (result, out) = run(relay(CHUNKED, Body::Chunked, Some(7)));
        assert!(!result.unwrap());
        assert_eq!(out, b"5;ext=1\r\nhello\r\n6\r\n w");
        // A cut exactly at a chunk boundary does not announce the next chunk.
        let (result, out) = run(relay(CHUNKED, Body::Chunked, Some(5)));
        assert!(!result.unwrap());
        assert_eq!(out, b"5;ext=1\r\nhello\r\n");
        // Not past the end: the body is whole.
        let (result, _) = run(relay(CHUNKED, Body::Chunked, Some(11)));
        assert!(result.unwrap());
    }

    #[test]
    fn length_and_until_close_bodies() {
        let (result, out) = run(relay(b"abcdefXYZ", Body::Length(6), None));
        assert!(result.unwrap());
        assert_eq!(out, b"abcdef");
        let (result, out) = run(relay(b"abcdef", Body::Length(6), Some(2)));
        assert!(!result.unwrap());
        assert_eq!(out, b"ab");
        let (result, _) = run(relay(b"abc", Body::Length(6), None));
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let (result, out) = run(relay(b"abcdef", Body::UntilClose, Some(6)));
        assert!(result.unwrap());
        assert_eq!(out, b"abcdef");
        let (result, out) = run(relay(b"abcdef", Body::UntilClose, Some(5)));
        assert!(!result.unwrap());
        assert_eq!(out, b"abcde");
    }

    #[test]
    fn heads_parse_and_frame() {
        let mut from: &[u8] =
            b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\nconnection: close\r\n\r\nabc";
        let head = run(read_head(&mut from)).unwrap().unwrap();
        assert_eq!(head.status(), Some(200));
        assert!(head.has_token("Connection", "close"));
        assert_eq!(response_body(&head, false, 200), Body::Length(3));
        assert_eq!(response_body(&head, true, 200), Body::Empty);
        assert_eq!(from, b"abc");
        let mut empty: &[u8] = b"";
        assert!(run(read_head(&mut empty)).unwrap().is_none());
        assert_eq!(origin_form("http://h:1/v2/x?y=1"), "/v2/x?y=1");
        assert_eq!(origin_form("/v2/"), "/v2/");
    }
}
