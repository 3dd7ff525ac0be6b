//! Listening, connections, TLS, shutdown, and the state every request shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};

use crate::auth::Htpasswd;
use crate::backing::{Backing, SourceSpec, Stamp};
use crate::catalog::Catalog;
use crate::error::ServeError;
use crate::upload::Uploads;
use crate::verify::Verified;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 512;
/// A client must send its request headers (and finish a TLS handshake) within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// On shutdown, requests in flight get this long to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// How `ferry serve` runs: what it serves, where, and with which protections.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// What to serve: a layout, a Zarf package, an archive or the blob cache.
    pub source: SourceSpec,
    /// The address to listen on (port 0: any free port; see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// Certificate chain and private key (PEM) for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Basic authentication against this htpasswd file (bcrypt entries).
    pub htpasswd: Option<PathBuf>,
    /// Accept pushes into the layout.
    pub writable: bool,
    /// Also serve each tagged image under the `<tag>-zarf-<crc32>` tag Zarf's push gives it.
    pub zarf_names: bool,
    /// The largest blob a push may upload.
    pub max_upload_bytes: u64,
    /// Where decompressed copies of compressed tarballs go (default: beside them, else the temp dir).
    pub temp_dir: Option<PathBuf>,
}

pub(crate) struct State {
    pub backing: Backing,
    pub verified: Verified,
    pub uploads: Option<Uploads>,
    pub auth: Option<Arc<Htpasswd>>,
    zarf_names: bool,
    catalog: tokio::sync::RwLock<(Option<Stamp>, Arc<Catalog>)>,
    reload: tokio::sync::Mutex<()>,
    stale: AtomicBool,
}

impl State {
    /// The catalog, read again when the index changed (a `ferry pull` into the layout by another process,
    /// or a push here).
    pub async fn catalog(&self) -> Arc<Catalog> {
        let current = self.backing.index_stamp();
        {
            let c = self.catalog.read().await;
            if c.0 == current && !self.stale.load(Ordering::Acquire) {
                return c.1.clone();
            }
        }
        let _one = self.reload.lock().await;
        let current = self.backing.index_stamp();
        {
            let c = self.catalog.read().await;
            if c.0 == current && !self.stale.load(Ordering::Acquire) {
                return c.1.clone();
            }
        }
        self.stale.store(false, Ordering::Release);
        match Catalog::load(&self.backing, self.zarf_names).await {
            Ok(fresh) => {
                tracing::info!(
                    "{}: index changed; serving what it lists now",
                    self.backing.describe()
                );
                let fresh = Arc::new(fresh);
                *self.catalog.write().await = (current, fresh.clone());
                fresh
            }
            Err(e) => {
                tracing::warn!(
                    "{}: cannot read the changed index ({e}); serving the last one",
                    self.backing.describe()
                );
                self.catalog.read().await.1.clone()
            }
        }
    }

    /// This process changed the index: read it again on the next request.
    pub async fn invalidate(&self) {
        self.stale.store(true, Ordering::Release);
    }
}

/// A bound server; [`Server::run`] serves until the shutdown future completes.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// Open the source, read its index, and bind the listening socket.
    pub async fn bind(opts: ServeOptions) -> Result<Server, ServeError> {
        if opts.htpasswd.is_some() && opts.tls.is_none() && !opts.listen.ip().is_loopback() {
            return Err(ServeError::Invalid(format!(
                "--htpasswd on {} without --tls-cert/--tls-key would take passwords in clear text over \
                 the network; add TLS, or listen on loopback",
                opts.listen
            )));
        }
        let backing = Backing::open(&opts.source, opts.temp_dir.clone(), opts.writable).await?;
        let uploads = match (opts.writable, backing.layout()) {
            (false, _) => None,
            (true, Some(layout)) => Some(Uploads::new(layout.clone(), opts.max_upload_bytes)),
            (true, None) => {
                return Err(ServeError::Invalid(format!(
                    "--writable needs an OCI layout directory (or a Zarf package directory) to push into; \
                     {} is served read-only",
                    backing.describe()
                )));
            }
        };
        let auth = opts
            .htpasswd
            .as_deref()
            .map(Htpasswd::load)
            .transpose()?
            .map(Arc::new);
        let tls = match &opts.tls {
            Some((cert, key)) => Some(crate::tls::acceptor(cert, key)?),
            None => None,
        };
        let stamp = backing.index_stamp();
        let catalog = Catalog::load(&backing, opts.zarf_names)
            .await
            .map_err(|source| ServeError::Store {
                source_name: backing.describe(),
                source,
            })?;
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: opts.listen,
                source,
            })?;
        Ok(Server {
            listener,
            tls,
            state: Arc::new(State {
                backing,
                verified: Verified::default(),
                uploads,
                auth,
                zarf_names: opts.zarf_names,
                catalog: tokio::sync::RwLock::new((stamp, Arc::new(catalog))),
                reload: tokio::sync::Mutex::new(()),
                stale: AtomicBool::new(false),
            }),
        })
    }

    /// The address the server listens on (the port chosen, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// What is served, for the start-up line: the source, and how many repositories and tags it has.
    pub async fn summary(&self) -> String {
        let cat = self.state.catalog().await;
        let tags: usize = cat.repositories.values().map(|t| t.len()).sum();
        format!(
            "{} ({} repositories, {tags} tags{})",
            self.state.backing.describe(),
            cat.repositories.len(),
            if self.state.uploads.is_some() {
                ", writable"
            } else {
                ", read-only"
            }
        )
    }

    /// Serve until `shutdown` completes; then stop accepting, let requests in flight finish (for a few
    /// seconds), and return. Unfinished uploads are discarded with their spool files.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let (stream, remote) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, don't spin.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let (state, tls, stop) = (self.state.clone(), self.tls.clone(), stop_rx.clone());
            connections.spawn(async move {
                let _permit = permit;
                match tls {
                    None => serve_connection(TokioIo::new(stream), state, remote, stop).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => {
                                serve_connection(TokioIo::new(s), state, remote, stop).await
                            }
                            Ok(Err(e)) => tracing::debug!("{remote}: TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!("{remote}: TLS handshake timed out"),
                        }
                    }
                }
            });
            // Reap finished connections so the set does not grow.
            while connections.try_join_next().is_some() {}
        }
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(DRAIN, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!(
                "stopping {} connections still open after {DRAIN:?}",
                connections.len()
            );
            connections.shutdown().await;
        }
        Ok(())
    }
}

async fn serve_connection<I>(
    io: TokioIo<I>,
    state: Arc<State>,
    remote: SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(crate::routes::handle(state, req, remote).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("{remote}: {e}");
            }
        }
        _ = async { drop(stop.wait_for(|s| *s).await) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
