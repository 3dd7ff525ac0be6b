//! The fault proxy in front of a real registry, driven by reqwest (pooled, keep-alive) and by raw
//! sockets (chunked uploads, several requests on one connection).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferry_test::encode::{percent_encode, sha256_digest};
use ferry_test::faults::{Fault, FaultProxy, Rule, Seen};
use ferry_test::{Blob, Mode, Registry, fixtures};

const REPO: &str = "ferry/faults";

/// A registry holding one image with a layer of 200 000 bytes (before gzip), that layer, and a proxy in front.
async fn setup() -> (Registry, Blob, FaultProxy) {
    let registry = Registry::start(Mode::Plain);
    let image = fixtures::oci_image_sized(1, &[200_000], "amd64");
    registry.seed(REPO, Some("v1"), &image).await;
    let layer = image
        .blobs
        .iter()
        .max_by_key(|b| b.size())
        .expect("layer")
        .clone();
    assert!(layer.size() > 200_000, "gzip framing on 200 000 bytes");
    let proxy = FaultProxy::start(&registry.host());
    (registry, layer, proxy)
}

fn rule(method: &str, fault: Fault) -> Rule {
    Rule::new(Some(method), "/blobs/sha256:", fault, 1)
}

/// Reads the body piece by piece: the bytes that arrived, and whether it ended in an error.
async fn read_body(response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut response = response;
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return (body, false),
            Err(_) => return (body, true),
        }
    }
}

#[tokio::test]
async fn blob_faults_reach_reqwest() {
    let (registry, layer, proxy) = setup().await;
    assert_ne!(proxy.host(), registry.host());
    let client = ferry_test::client(None);
    let url = format!("{}/v2/{REPO}/blobs/{}", proxy.base_url(), layer.digest());
    let get = || async {
        let response = client.get(&url).send().await.expect("GET through proxy");
        let status = response.status().as_u16();
        let (body, failed) = read_body(response).await;
        assert!(!failed, "body error");
        (status, body)
    };

    // Untouched: exact bytes, and HEAD has no body.
    assert_eq!(get().await, (200, layer.bytes.to_vec()));
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    // reqwest's content_length() is the (empty) body's size for HEAD; the header is what counts.
    assert_eq!(
        head.headers()["content-length"],
        layer.size().to_string().as_str()
    );

    // A rule for another method or path does not fire.
    proxy.add(rule("PUT", Fault::Reset));
    proxy.add(Rule::new(None, "/manifests/", Fault::Reset, 1));

    // CutBody: exactly 1000 bytes then an error, once.
    proxy.add(rule("GET", Fault::CutBody { after: 1000 }));
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (body, failed) = read_body(response).await;
    assert!(failed, "a cut body must be an error, not a short success");
    assert_eq!(body, layer.bytes[..1000]);
    assert_eq!(get().await, (200, layer.bytes.to_vec()));

    // IgnoreRange: the registry honours Range, through the fault it is gone.
    let ranged = |range: &'static str| {
        let request = client.get(&url).header("Range", range);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap().to_vec())
        }
    };
    assert_eq!(
        ranged("bytes=100-199").await,
        (206, layer.bytes[100..200].to_vec())
    );
    proxy.add(rule("GET", Fault::IgnoreRange));
    assert_eq!(ranged("bytes=100-").await, (200, layer.bytes.to_vec()));

    // Status: 429 with Retry-After once, then the blob again; on HEAD without a body.
    proxy.add(rule(
        "GET",
        Fault::Status {
            code: 429,
            retry_after: Some("1".into()),
        },
    ));
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let error: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(error["errors"][0]["code"], "TOOMANYREQUESTS");
    assert_eq!(get().await, (200, layer.bytes.to_vec()));
    proxy.add(rule(
        "HEAD",
        Fault::Status {
            code: 503,
            retry_after: None,
        },
    ));
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 503);
    assert!(!head.headers().contains_key("retry-after"));

    // Reset: no response at all.
    proxy.add(rule("GET", Fault::Reset));
    let error = client.get(&url).send().await.expect_err("reset");
    assert!(!error.is_status(), "{error:?}");
    assert_eq!(get().await, (200, layer.bytes.to_vec()));

    // Delay and SlowBody: late but whole.
    proxy.add(rule("GET", Fault::Delay(Duration::from_millis(300))));
    let started = Instant::now();
    assert_eq!(get().await, (200, layer.bytes.to_vec()));
    assert!(started.elapsed() >= Duration::from_millis(300));
    proxy.add(rule(
        "GET",
        Fault::SlowBody {
            chunk: 50_000,
            pause: Duration::from_millis(100),
        },
    ));
    let started = Instant::now();
    assert_eq!(get().await, (200, layer.bytes.to_vec()));
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "at least 4 pauses"
    );

    let seen = proxy.requests();
    let summary: Vec<(&str, u16, Option<&str>)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.status, s.fault.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", 200, None),
            ("HEAD", 200, None),
            ("GET", 0, Some("CutBody { after: 1000 }")),
            ("GET", 200, None),
            ("GET", 206, None),
            ("GET", 200, Some("IgnoreRange")),
            (
                "GET",
                429,
                Some("Status { code: 429, retry_after: Some(\"1\") }")
            ),
            ("GET", 200, None),
            ("HEAD", 503, Some("Status { code: 503, retry_after: None }")),
            ("GET", 0, Some("Reset")),
            ("GET", 200, None),
            ("GET", 200, Some("Delay(300ms)")),
            ("GET", 200, Some("SlowBody { chunk: 50000, pause: 100ms }")),
        ]
    );
    assert_eq!(seen[5].range.as_deref(), Some("bytes=100-"));
    assert!(
        seen.iter()
            .all(|s| s.path == format!("/v2/{REPO}/blobs/{}", layer.digest()))
    );
    assert_eq!(proxy.injected(), 7);

    // Concurrent requests share the rules: exactly two of eight are cut.
    proxy.add(Rule::new(
        Some("GET"),
        "/blobs/",
        Fault::CutBody { after: 10_000 },
        2,
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { read_body(client.get(&url).send().await.unwrap()).await });
    }
    let results = tasks.join_all().await;
    let cut = results.iter().filter(|(_, failed)| *failed).count();
    assert_eq!(cut, 2);
    assert!(
        results
            .iter()
            .all(|(body, failed)| *failed || body[..] == layer.bytes[..])
    );
    assert_eq!(proxy.injected(), 9);
}

#[tokio::test]
async fn uploads_follow_rewritten_locations() {
    let registry = Registry::start(Mode::Plain);
    let proxy = FaultProxy::start(&registry.host());
    let client = ferry_test::client(None);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256_digest(&data);
    let repo = "ferry/upload";

    let response = client
        .post(format!("{}/v2/{repo}/blobs/uploads/", proxy.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/v2/{repo}/blobs/uploads/", proxy.base_url())),
        "{location}"
    );

    // A 503 in the middle does not lose the session; the retried PATCH still goes through.
    proxy.add(Rule::new(
        Some("PATCH"),
        "/blobs/uploads/",
        Fault::Status {
            code: 503,
            retry_after: Some("0".into()),
        },
        1,
    ));
    let patch = || {
        client
            .patch(&location)
            .header("Content-Type", "application/octet-stream")
            .body(data[..60_000].to_vec())
            .send()
    };
    assert_eq!(patch().await.unwrap().status(), 503);
    let response = patch().await.unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&proxy.base_url()), "{location}");

    let separator = if location.contains('?') { '&' } else { '?' };
    let response = client
        .put(format!(
            "{location}{separator}digest={}",
            percent_encode(&digest)
        ))
        .header("Content-Type", "application/octet-stream")
        .body(data[60_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(registry.blob_exists(repo, &digest).await);

    let seen = proxy.requests();
    let summary: Vec<(&str, u16)> = seen.iter().map(|s| (s.method.as_str(), s.status)).collect();
    assert_eq!(
        summary,
        [("POST", 202), ("PATCH", 503), ("PATCH", 202), ("PUT", 201)]
    );
    assert!(seen[3].path.contains("digest=sha256%3A"), "{:?}", seen[3]);
    assert_eq!(proxy.injected(), 1);
}

/// A response read off a raw socket: status, headers (lowercase names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` and reads one Content-Length-framed answer from the same connection.
fn exchange(reader: &mut BufReader<TcpStream>, request: &[u8], to_head: bool) -> Answer {
    reader.get_mut().write_all(request).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.trim_end().is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = answer
        .header("content-length")
        .expect("content-length")
        .parse()
        .unwrap();
    if !to_head {
        answer.body = vec![0; len];
        reader.read_exact(&mut answer.body).unwrap();
    }
    answer
}

/// Synchronous on purpose: the proxy must serve plain `#[test]`s too.
#[test]
fn chunked_upload_and_keep_alive_on_one_raw_connection() {
    let registry = Registry::start(Mode::Plain);
    let proxy = FaultProxy::start(&registry.host());
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
    let digest = sha256_digest(&data);
    let repo = "ferry/chunked";
    let host = proxy.host();
    let mut conn = BufReader::new(TcpStream::connect(&host).unwrap());
    let path_of = |location: &str| {
        location
            .strip_prefix(&proxy.base_url())
            .unwrap_or_else(|| panic!("not rewritten: {location}"))
            .to_string()
    };

    let post = format!(
        "POST /v2/{repo}/blobs/uploads/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    );
    let answer = exchange(&mut conn, post.as_bytes(), false);
    assert_eq!(answer.status, 202);
    assert_eq!(answer.header("connection"), None, "kept alive");
    let upload = path_of(answer.header("location").unwrap());

    let mut patch = format!(
        "PATCH {upload} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    for piece in data.chunks(30_000) {
        patch.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        patch.extend_from_slice(piece);
        patch.extend_from_slice(b"\r\n");
    }
    patch.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(&mut conn, &patch, false);
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("range"), Some("0-69999"));
    let upload = path_of(answer.header("location").unwrap());

    let separator = if upload.contains('?') { '&' } else { '?' };
    let put = format!(
        "PUT {upload}{separator}digest={} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n",
        percent_encode(&digest)
    );
    assert_eq!(exchange(&mut conn, put.as_bytes(), false).status, 201);

    let get = format!("GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let answer = exchange(&mut conn, get.as_bytes(), false);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, data);

    // A client that asks to close gets its answer and then EOF.
    let head = format!(
        "HEAD /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let answer = exchange(&mut conn, head.as_bytes(), true);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-length"), Some("70000"));
    assert_eq!(answer.header("connection"), Some("close"));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    let seen: Vec<Seen> = proxy.requests();
    let summary: Vec<(&str, u16)> = seen.iter().map(|s| (s.method.as_str(), s.status)).collect();
    assert_eq!(
        summary,
        [
            ("POST", 202),
            ("PATCH", 202),
            ("PUT", 201),
            ("GET", 200),
            ("HEAD", 200)
        ]
    );
    assert_eq!(proxy.injected(), 0);
}
