//! A link emulator: a TCP proxy that gives every connection through it the latency and bandwidth of a
//! long-distance link, for benchmarks and tests on a machine without `tc`/netem.
//!
//! Each direction of a connection is a pipe of chunks. The reader takes a chunk from its socket, waits
//! until the connection's own wire and then the shared link have room for it (token buckets kept as a
//! virtual clock), and stamps it to arrive one `delay` after its last byte left. The writer delivers chunks
//! in order at their stamps. What is stamped but not yet delivered is capped by a window in bytes, so a
//! receiver that stops reading stops the sender through TCP's own back-pressure and memory stays bounded.
//! The first bytes a client sends wait one round trip more, the TCP handshake a real link would cost
//! (the client's handshake with this proxy is local and instant).
//!
//! An idealised link: no loss, no slow start, no reordering; the bound it gives is optimistic for
//! every client alike.

use crate::server::BackgroundServer;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, sleep_until};

/// Largest chunk read from a socket at once: the granularity of pacing (0.5 ms at 1 Gbit/s).
const CHUNK: usize = 64 * 1024;
/// How far a pacer may fall behind real time and catch up at once: absorbs timer lateness (tokio sleeps
/// in whole milliseconds) without letting an idle connection burst for long.
const BURST: Duration = Duration::from_millis(5);
/// The window when no rate is set: what a well-tuned TCP stack keeps in flight (Linux' tcp_rmem max).
const UNPACED_WINDOW: usize = 6 << 20;
/// Never more in flight than this per connection and direction, whatever the rate and delay.
const MAX_WINDOW: usize = 64 << 20;

/// What a link does to the traffic through it; each direction gets the same treatment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkSpec {
    /// One-way delay: a round trip costs twice this.
    pub delay: Duration,
    /// Bytes per second each connection may carry per direction; `None`: unlimited.
    pub connection_rate: Option<u64>,
    /// Bytes per second all connections together may carry per direction; `None`: unlimited.
    pub link_rate: Option<u64>,
    /// Bytes in flight per connection and direction; `None`: twice the bandwidth-delay product of the
    /// connection's rate (so the window never caps throughput below the rate), at least four chunks.
    pub window: Option<usize>,
}

impl LinkSpec {
    /// The effective window in bytes.
    pub fn window(&self) -> usize {
        if let Some(w) = self.window {
            return w.clamp(CHUNK, MAX_WINDOW);
        }
        let rate = match (self.connection_rate, self.link_rate) {
            (Some(c), Some(l)) => Some(c.min(l)),
            (c, l) => c.or(l),
        };
        match rate {
            Some(rate) => {
                let bdp = rate as f64 * self.delay.as_secs_f64();
                ((2.0 * bdp) as usize).clamp(4 * CHUNK, MAX_WINDOW)
            }
            None => UNPACED_WINDOW,
        }
    }
}

/// Parses a rate as `tc` spells it: a number with `bit`, `kbit`, `mbit`, `gbit` (decimal, bits per
/// second) or `bps`, `kbps`, `mbps`, `gbps` (bytes per second); `0`, `none` or `unlimited` for no cap.
/// Returns bytes per second.
pub fn parse_rate(text: &str) -> Result<Option<u64>, String> {
    let lower = text.trim().to_ascii_lowercase();
    if matches!(lower.as_str(), "0" | "none" | "unlimited") {
        return Ok(None);
    }
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("rate '{text}' has no unit (bit, kbit, mbit, gbit, bps, ...)"))?;
    let (number, unit) = lower.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("rate '{text}' does not start with a number"))?;
    let bits_per_unit = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => return Err(format!("rate '{text}': unknown unit '{unit}'")),
    };
    let bytes = number * bits_per_unit / 8.0;
    if !(1.0..1e15).contains(&bytes) {
        return Err(format!("rate '{text}' is out of range"));
    }
    Ok(Some(bytes as u64))
}

/// A token bucket kept as a virtual clock: the instant the wire is free again.
#[derive(Debug)]
struct Pacer {
    seconds_per_byte: f64,
    free_at: Instant,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer {
            seconds_per_byte: 1.0 / rate as f64,
            free_at: Instant::now(),
        }
    }

    /// Books the wire for `bytes` starting no earlier than `now` (less what the burst allowance makes
    /// up); returns when their last byte has left.
    fn book(&mut self, bytes: usize, now: Instant) -> Instant {
        let start = self.free_at.max(now - BURST);
        self.free_at = start + self.time_for(bytes);
        self.free_at
    }

    fn time_for(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 * self.seconds_per_byte)
    }
}

/// Sleeps until `deadline`, without a trip through the timer when it has passed (a timer rounds up to
/// the next millisecond, which would add up over many chunks).
async fn wait_until(deadline: Instant) {
    if deadline > Instant::now() {
        sleep_until(deadline).await;
    }
}

/// Counters of one link, over all its connections.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Bytes read from clients / written to the upstream.
    pub up_read: AtomicU64,
    /// Bytes written to the upstream.
    pub up_written: AtomicU64,
    /// Bytes read from the upstream / written to clients.
    pub down_read: AtomicU64,
    /// Bytes written to clients.
    pub down_written: AtomicU64,
}

/// The emulated link between clients and one upstream address.
#[derive(Debug)]
pub struct Link {
    upstream: SocketAddr,
    spec: LinkSpec,
    up: Option<Mutex<Pacer>>,
    down: Option<Mutex<Pacer>>,
    stats: LinkStats,
}

impl Link {
    /// A link to `upstream` with the rate, latency and faults of `spec`.
    pub fn new(upstream: SocketAddr, spec: LinkSpec) -> Arc<Link> {
        let pacer = || spec.link_rate.map(|r| Mutex::new(Pacer::new(r)));
        Arc::new(Link {
            upstream,
            spec,
            up: pacer(),
            down: pacer(),
            stats: LinkStats::default(),
        })
    }

    /// Its counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Accepts connections on `listener` and carries each through the link, forever.
    pub async fn serve(self: Arc<Link>, listener: tokio::net::TcpListener) -> io::Result<()> {
        loop {
            let (client, _) = listener.accept().await?;
            tokio::spawn(self.clone().carry(client));
        }
    }

    /// Carries one client connection until both directions are closed, or either fails (then both are
    /// dropped, which closes them).
    pub async fn carry(self: Arc<Link>, client: TcpStream) {
        let accepted = Instant::now();
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        let Ok(upstream) = TcpStream::connect(self.upstream).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (upstream_read, upstream_write) = upstream.into_split();
        let handshake = accepted + 2 * self.spec.delay;
        let up = Direction {
            link: &self,
            pacer: self.up.as_ref(),
            read: &self.stats.up_read,
            written: &self.stats.up_written,
        };
        let down = Direction {
            link: &self,
            pacer: self.down.as_ref(),
            read: &self.stats.down_read,
            written: &self.stats.down_written,
        };
        let _ = tokio::try_join!(
            up.pump(client_read, upstream_write, handshake),
            down.pump(upstream_read, client_write, accepted),
        );
    }
}

/// One direction of one connection.
struct Direction<'a> {
    link: &'a Link,
    /// The link's shared pacer for this direction.
    pacer: Option<&'a Mutex<Pacer>>,
    read: &'a AtomicU64,
    written: &'a AtomicU64,
}

impl Direction<'_> {
    /// Moves bytes from `from` to `to` through the link; nothing leaves before `not_before` + delay.
    /// Ends after forwarding the end of the stream as a half-close.
    async fn pump(
        &self,
        mut from: OwnedReadHalf,
        mut to: OwnedWriteHalf,
        not_before: Instant,
    ) -> io::Result<()> {
        let spec = &self.link.spec;
        let window = Arc::new(Semaphore::new(spec.window()));
        // Bounded by the window's permits, which travel with each chunk.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reader = async move {
            let mut own = spec.connection_rate.map(Pacer::new);
            loop {
                let mut buf = BytesMut::with_capacity(CHUNK);
                let n = from.read_buf(&mut buf).await?;
                let now = Instant::now().max(not_before);
                if n == 0 {
                    let _ = tx.send((now + spec.delay, None));
                    return Ok::<_, io::Error>(());
                }
                self.read.fetch_add(n as u64, Ordering::Relaxed);
                let permit = window
                    .clone()
                    .acquire_many_owned(n as u32)
                    .await
                    .expect("the window is never closed");
                // The connection's own wire first, then a slot on the shared link from when it is free.
                let mut sent = now;
                if let Some(own) = own.as_mut() {
                    sent = own.book(n, now);
                    // The shared link is booked once this chunk is on the connection's wire.
                    wait_until(sent - own.time_for(n)).await;
                }
                if let Some(link) = self.pacer {
                    let booked = link.lock().expect("pacer lock").book(n, Instant::now());
                    sent = sent.max(booked);
                }
                wait_until(sent).await;
                if tx
                    .send((sent + spec.delay, Some((buf.freeze(), permit))))
                    .is_err()
                {
                    return Ok(()); // the writer failed and says why
                }
            }
        };
        let writer = async move {
            while let Some((arrives, chunk)) = rx.recv().await {
                wait_until(arrives).await;
                let Some((bytes, _permit)) = chunk else {
                    return to.shutdown().await;
                };
                to.write_all(&bytes).await?;
                self.written
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Ok(())
        };
        tokio::try_join!(reader, writer).map(|_| ())
    }
}

/// A [`Link`] on 127.0.0.1 in its own thread, for tests; stopped (with its connections) on Drop.
pub struct LinkProxy {
    link: Arc<Link>,
    server: BackgroundServer,
}

impl LinkProxy {
    /// Starts a link in front of `upstream`, listening on an ephemeral port of 127.0.0.1.
    pub fn start(upstream: SocketAddr, spec: LinkSpec) -> LinkProxy {
        let listener = BackgroundServer::bind("ferry-test-link");
        let link = Link::new(upstream, spec);
        let serving = link.clone();
        let server = BackgroundServer::start("ferry-test-link", listener, move |client| {
            serving.clone().carry(client)
        });
        LinkProxy { link, server }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The link's counters.
    pub fn stats(&self) -> &LinkStats {
        self.link.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_tc_spells_them() {
        assert_eq!(parse_rate("100mbit"), Ok(Some(12_500_000)));
        assert_eq!(parse_rate("1gbit"), Ok(Some(125_000_000)));
        assert_eq!(parse_rate("1.5Gbit"), Ok(Some(187_500_000)));
        assert_eq!(parse_rate("10mbps"), Ok(Some(10_000_000)));
        assert_eq!(parse_rate("none"), Ok(None));
        assert_eq!(parse_rate("0"), Ok(None));
        assert!(parse_rate("100").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("100furlongs").is_err());
        assert!(parse_rate("0.001bit").is_err());
    }

    #[test]
    fn the_window_covers_the_bandwidth_delay_product() {
        let spec = LinkSpec {
            delay: Duration::from_millis(25),
            connection_rate: Some(125_000_000),
            link_rate: None,
            window: None,
        };
        // 1 Gbit/s × 25 ms = 3.125 MB in flight; twice that.
        assert_eq!(spec.window(), 6_250_000);
        let slow = LinkSpec {
            connection_rate: Some(1000),
            ..spec
        };
        assert_eq!(slow.window(), 4 * CHUNK);
        let fixed = LinkSpec {
            window: Some(1 << 20),
            ..spec
        };
        assert_eq!(fixed.window(), 1 << 20);
    }

    #[test]
    fn a_pacer_spaces_bookings_by_the_rate() {
        let close = |a: Duration, b: Duration| a.abs_diff(b) < Duration::from_micros(10);
        let mut pacer = Pacer::new(1_000_000);
        let now = Instant::now();
        pacer.free_at = now;
        let first = pacer.book(100_000, now);
        let second = pacer.book(100_000, now);
        assert!(close(first - now, Duration::from_millis(100)));
        assert!(close(second - now, Duration::from_millis(200)));
        // After a long idle time only BURST of it is made up.
        let later = now + Duration::from_secs(10);
        assert!(close(
            pacer.book(100_000, later) - later,
            Duration::from_millis(95)
        ));
    }
}
