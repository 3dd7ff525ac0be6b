//! The link emulator measured from outside: round trips cost twice the delay, throughput stays under the
//! caps, bytes arrive whole and in order, half-closes pass through, and a receiver that stops reading
//! stops the proxy from buffering. Only loose bounds are asserted (timing on a shared machine is noisy);
//! the measured values are printed.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_test::link::{LinkProxy, LinkSpec};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn spec(delay_ms: u64, connection_rate: Option<u64>, link_rate: Option<u64>) -> LinkSpec {
    LinkSpec {
        delay: Duration::from_millis(delay_ms),
        connection_rate,
        link_rate,
        window: None,
    }
}

/// Deterministic incompressible-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An upstream that echoes everything back, then half-closes when the client does.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
    addr
}

/// An upstream that sends `len` bytes of [`pattern`] to every connection, then closes.
async fn source_server(len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(&pattern(len, 7)).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

async fn ping(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    stream.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await.unwrap();
    started.elapsed()
}

#[tokio::test]
async fn a_round_trip_costs_twice_the_delay_and_a_new_connection_one_more() {
    let link = LinkProxy::start(echo_server().await, spec(25, None, None));
    let mut stream = TcpStream::connect(link.addr()).await.unwrap();
    let first = ping(&mut stream).await;
    let mut later = Vec::new();
    for _ in 0..5 {
        later.push(ping(&mut stream).await);
    }
    later.sort();
    let median = later[later.len() / 2];
    println!(
        "delay 25 ms: first exchange {first:?} (handshake + round trip), later median {median:?}"
    );
    assert!(
        first >= Duration::from_millis(100),
        "handshake + RTT: {first:?}"
    );
    assert!(
        later[0] >= Duration::from_millis(50),
        "RTT at least 2 × delay: {later:?}"
    );
    assert!(
        median < Duration::from_secs(2),
        "RTT far too long: {later:?}"
    );
}

#[tokio::test]
async fn bytes_arrive_whole_and_in_order_both_ways_and_half_closes_pass() {
    let link = LinkProxy::start(
        echo_server().await,
        spec(2, Some(400_000_000), Some(400_000_000)),
    );
    let sent = pattern(8 << 20, 42);
    let stream = TcpStream::connect(link.addr()).await.unwrap();
    let (mut r, mut w) = stream.into_split();
    let body = sent.clone();
    let writer = tokio::spawn(async move {
        // Odd-sized writes, so chunk boundaries never line up with the proxy's.
        for piece in body.chunks(10_007) {
            w.write_all(piece).await.unwrap();
        }
        w.shutdown().await.unwrap(); // the echo server sees EOF only through the proxy
    });
    let mut received = Vec::new();
    r.read_to_end(&mut received).await.unwrap(); // ends only when the half-close came back
    writer.await.unwrap();
    assert_eq!(received.len(), sent.len());
    assert_eq!(
        Sha256::digest(&received),
        Sha256::digest(&sent),
        "bytes changed or reordered"
    );
    let stats = link.stats();
    assert_eq!(stats.up_written.load(Ordering::Relaxed), sent.len() as u64);
    assert_eq!(
        stats.down_written.load(Ordering::Relaxed),
        sent.len() as u64
    );
}

async fn download(addr: SocketAddr) -> usize {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, pattern(got.len(), 7));
    got.len()
}

#[tokio::test]
async fn a_connection_is_capped_at_its_rate() {
    let bytes = 3_000_000;
    let rate = 6_000_000; // 48 Mbit/s: 0.5 s for the whole body
    let link = LinkProxy::start(source_server(bytes).await, spec(5, Some(rate), None));
    let started = Instant::now();
    assert_eq!(download(link.addr()).await, bytes);
    let elapsed = started.elapsed().as_secs_f64();
    let achieved = bytes as f64 / elapsed;
    println!(
        "one connection capped at {rate} B/s: {achieved:.0} B/s ({:.0} % of the cap)",
        100.0 * achieved / rate as f64
    );
    assert!(achieved <= 1.5 * rate as f64, "{achieved} B/s over {rate}");
}

#[tokio::test]
async fn connections_together_are_capped_at_the_link_rate() {
    let bytes = 1_500_000;
    let link_rate = 6_000_000; // four connections of 1.5 MB: 1 s together
    let link = LinkProxy::start(
        source_server(bytes).await,
        spec(5, Some(100_000_000), Some(link_rate)),
    );
    let started = Instant::now();
    let downloads: Vec<_> = (0..4)
        .map(|_| tokio::spawn(download(link.addr())))
        .collect();
    let mut total = 0;
    for d in downloads {
        total += d.await.unwrap();
    }
    let achieved = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "four connections over a link capped at {link_rate} B/s: {achieved:.0} B/s ({:.0} %)",
        100.0 * achieved / link_rate as f64
    );
    assert_eq!(total, 4 * bytes);
    assert!(
        achieved <= 1.5 * link_rate as f64,
        "{achieved} B/s over {link_rate}"
    );
    assert_eq!(link.stats().connections.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn a_receiver_that_stops_reading_stops_the_proxy_buffering() {
    let window = 1 << 20;
    let link = LinkProxy::start(
        source_server(256 << 20).await,
        LinkSpec {
            window: Some(window),
            ..spec(1, None, None)
        },
    );
    let stream = TcpStream::connect(link.addr()).await.unwrap(); // never read
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stats = link.stats();
    let read = stats.down_read.load(Ordering::Relaxed);
    let held = read - stats.down_written.load(Ordering::Relaxed);
    println!("a stalled receiver: the proxy read {read} bytes and holds {held}");
    // The window, plus the one chunk read before waiting for room in it.
    assert!(held <= (window + (64 << 10)) as u64, "holds {held} bytes");
    // What was written sits in the client's and proxy's socket buffers, a few MiB at most, not 256 MiB.
    assert!(
        read < 64 << 20,
        "read {read} bytes for a receiver that reads nothing"
    );
    drop(stream);
}
