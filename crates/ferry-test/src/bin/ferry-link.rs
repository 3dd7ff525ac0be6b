//! `ferry-link`: the link emulator as a process, for bench/run (see `ferry_test::link`).
//!
//!     ferry-link --listen 127.0.0.1:0 --upstream 127.0.0.1:5000 --delay-ms 25 --rate 100mbit --link-rate 1gbit
//!
//! Prints the address it listens on as the first line of stdout, then serves until killed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ferry_test::link::{Link, LinkSpec, parse_rate};

#[derive(Parser, Debug)]
#[command(about = "A TCP proxy that adds a link's delay and bandwidth caps to every connection")]
struct Args {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where every connection goes.
    #[arg(long)]
    upstream: SocketAddr,
    /// One-way delay in milliseconds, each direction (a round trip costs twice this).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Per connection and direction: 100mbit, 1gbit, 10mbps (bytes), none.
    #[arg(long, default_value = "none", value_parser = rate)]
    rate: Rate,
    /// All connections together, per direction.
    #[arg(long, default_value = "none", value_parser = rate)]
    link_rate: Rate,
    /// Bytes in flight per connection and direction (default: twice the bandwidth-delay product).
    #[arg(long)]
    window: Option<usize>,
}

/// Bytes per second, `None` for no cap (a newtype: clap would take a bare `Option` for "may be absent").
#[derive(Clone, Copy, Debug)]
struct Rate(Option<u64>);

fn rate(text: &str) -> Result<Rate, String> {
    parse_rate(text).map(Rate)
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let spec = LinkSpec {
        delay: Duration::from_millis(args.delay_ms),
        connection_rate: args.rate.0,
        link_rate: args.link_rate.0,
        window: args.window,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", listener.local_addr()?)?;
        stdout.flush()?;
        eprintln!(
            "ferry-link: {} -> {}: {spec:?}, window {} bytes",
            listener.local_addr()?,
            args.upstream,
            spec.window()
        );
        Link::new(args.upstream, spec).serve(listener).await
    })
}
