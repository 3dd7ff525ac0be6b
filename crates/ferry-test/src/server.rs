//! A TCP server on 127.0.0.1 with its own thread and current-thread runtime, so it serves sync and async
//! tests alike (a test's own runtime may be blocked in a `std::process::Command`).

use std::future::Future;
use std::net::SocketAddr;

pub(crate) struct BackgroundServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// An ephemeral port on 127.0.0.1, bound before the server starts so its address can be known first.
    pub fn bind(name: &str) -> std::net::TcpListener {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("bind {name}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        listener
    }

    /// Run `handle` for every connection on `listener` until dropped.
    pub fn start<F, Fut>(name: &str, listener: std::net::TcpListener, handle: F) -> BackgroundServer
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr().expect("server address");
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                // Dropping the runtime at the end of this thread drops every open connection.
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        tokio::select! {
                            _ = &mut stop => break,
                            accepted = listener.accept() => {
                                if let Ok((stream, _)) = accepted {
                                    tokio::spawn(handle(stream));
                                }
                            }
                        }
                    }
                });
            })
            .unwrap_or_else(|e| panic!("spawn {name} thread: {e}"));
        BackgroundServer {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
