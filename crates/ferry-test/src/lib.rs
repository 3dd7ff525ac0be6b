#![warn(missing_docs)]
//! Test support for ferry: real `docker-registry` processes (plain, TLS, Basic, token auth), a token
//! server, and deterministic fixture images and artifacts.
//!
//! Needs `docker-registry` (CNCF distribution 2.8), `htpasswd` and `openssl` on PATH:
//! `apt-get install -y docker-registry apache2-utils`.

mod artifact;
pub mod cosign_keys;
pub mod encode;
pub mod faults;
pub mod fixtures;
pub mod hostile;
pub mod link;
mod pki;
mod registry;
mod server;
pub mod sigstore;
pub mod token;
pub mod zarf_package;

pub use artifact::{Artifact, Blob};
pub use registry::{MANIFEST_ACCEPT, Registry, client};
pub use token::Access;

/// The user every authenticating registry and the token server accept.
pub const USER: &str = "ferry";
/// [`USER`]'s password.
pub const PASSWORD: &str = "s3cret-pass";

/// How a test registry is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP, no auth.
    Plain,
    /// HTTPS with a certificate from a per-process test CA ([`Registry::ca_file`]), no auth.
    Tls,
    /// HTTPS like [`Mode::Tls`] that also demands a client certificate signed by the test CA
    /// ([`Registry::client_identity`]).
    Mtls,
    /// HTTPS with a self-signed `CA:TRUE` certificate for `localhost` only, made the way Docker's guide
    /// makes one; [`Registry::ca_file`] is that certificate. Reach it as `localhost:PORT`.
    SelfSigned,
    /// Plain HTTP with htpasswd (bcrypt) Basic auth for [`USER`]/[`PASSWORD`].
    Basic,
    /// Plain HTTP with distribution token auth; the realm is this crate's token server, which wants
    /// Basic [`USER`]/[`PASSWORD`] and grants whatever scope is asked.
    Token,
}

/// Write the test CA and a server certificate for 127.0.0.1/localhost (signed by it) with its key into
/// `dir`, for servers other than the registry (`ferry serve`). Returns (ca, cert, key) paths.
pub fn write_tls_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let material = pki::tls();
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&ca, &material.ca_pem).expect("write CA");
    std::fs::write(&cert, &material.server_cert_pem).expect("write server cert");
    std::fs::write(&key, &material.server_key_pem).expect("write server key");
    (ca, cert, key)
}
