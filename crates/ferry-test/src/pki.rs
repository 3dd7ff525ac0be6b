//! Keys and certificates made once per test process with the openssl CLI, kept in memory and
//! written into each registry's temp dir, so no files outlive the registries.
//!
//! One CA serves every TLS registry of a process: a client trusting any registry's `ca_file()`
//! trusts them all, which copy tests between two registries rely on.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub const INSTALL_HINT: &str = "apt-get install -y docker-registry apache2-utils";

/// PEM material for the TLS listeners and their clients.
pub struct TlsMaterial {
    pub ca_pem: Vec<u8>,
    /// A CA-signed leaf for `127.0.0.1` and `localhost`.
    pub server_cert_pem: Vec<u8>,
    pub server_key_pem: Vec<u8>,
    /// A CA-signed client certificate (`clientAuth`), for registries that demand one.
    pub client_cert_pem: Vec<u8>,
    pub client_key_pem: Vec<u8>,
    /// Self-signed the way Docker's registry guide makes one (`openssl req -x509`, so `CA:TRUE`), for
    /// `localhost` only.
    pub self_signed_cert_pem: Vec<u8>,
    pub self_signed_key_pem: Vec<u8>,
}

/// The token signer: a self-signed certificate (the registry's `rootcertbundle`, and the token's
/// `x5c`) and its ECDSA P-256 key.
pub struct SigningMaterial {
    pub cert_pem: Vec<u8>,
    pub cert_der: Vec<u8>,
    pub key_pkcs8_der: Vec<u8>,
}

/// Runs a helper binary, panicking with its output (or an install hint if it is missing).
pub fn run(program: &str, args: &[&str], dir: &Path) -> Vec<u8> {
    let output = match Command::new(program).args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` not found; install it with: {INSTALL_HINT} (and openssl)")
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("reading generated {name}: {e}"))
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

pub fn tls() -> &'static TlsMaterial {
    static TLS: OnceLock<TlsMaterial> = OnceLock::new();
    TLS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "3650", "-keyout", "ca.key", "-out", "ca.pem"];
        ca.extend(EC_KEY);
        ca.extend([
            "-subj",
            "/CN=ferry-test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run("openssl", &ca, d);
        let mut csr = vec!["req", "-new", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"];
        csr.extend(EC_KEY);
        run("openssl", &csr, d);
        // rustls/webpki insist on SANs, a non-CA leaf and serverAuth; Go is happy with the same.
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext file");
        run(
            "openssl",
            &[
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "2", "-days",
                "3650", "-extfile", "server.ext", "-out", "server.pem",
            ],
            d,
        );
        let mut csr = vec!["req", "-new", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=ferry-test client"];
        csr.extend(EC_KEY);
        run("openssl", &csr, d);
        std::fs::write(
            d.join("client.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write ext file");
        run(
            "openssl",
            &[
                "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "3", "-days",
                "3650", "-extfile", "client.ext", "-out", "client.pem",
            ],
            d,
        );
        let mut self_signed = vec![
            "req", "-x509", "-nodes", "-days", "3650", "-keyout", "self.key", "-out", "self.pem", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost",
        ];
        self_signed.extend(EC_KEY);
        run("openssl", &self_signed, d);
        TlsMaterial {
            ca_pem: read(d, "ca.pem"),
            server_cert_pem: read(d, "server.pem"),
            server_key_pem: read(d, "server.key"),
            client_cert_pem: read(d, "client.pem"),
            client_key_pem: read(d, "client.key"),
            self_signed_cert_pem: read(d, "self.pem"),
            self_signed_key_pem: read(d, "self.key"),
        }
    })
}

pub fn signing() -> &'static SigningMaterial {
    static SIGNING: OnceLock<SigningMaterial> = OnceLock::new();
    SIGNING.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let mut req = vec![
            "req",
            "-x509",
            "-nodes",
            "-days",
            "3650",
            "-keyout",
            "signer.key",
            "-out",
            "signer.pem",
            "-subj",
            "/CN=ferry-test token signer",
        ];
        req.extend(EC_KEY);
        run("openssl", &req, d);
        let cert_der = run(
            "openssl",
            &["x509", "-in", "signer.pem", "-outform", "DER"],
            d,
        );
        // ring wants PKCS#8 DER; openssl's EC PKCS#8 (public key embedded, no inner parameters) fits.
        let key_pkcs8_der = run(
            "openssl",
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "signer.key",
                "-outform",
                "DER",
            ],
            d,
        );
        SigningMaterial {
            cert_pem: read(d, "signer.pem"),
            cert_der,
            key_pkcs8_der,
        }
    })
}
