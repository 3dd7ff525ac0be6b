//! Certificates the way people have them, against the real registry: a self-signed `CA:TRUE` certificate
//! given with `--ca-file` (accepted as Go accepts it, still checked for host name), certs.d and
//! `--cert-dir` directories with CAs and client certificates, and registries that demand one (mTLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_registry::{ClientOptions, RegistryClient, RegistryError, Repository};
use ferry_test::{Mode, Registry, fixtures};

fn client(opts: ClientOptions) -> Arc<RegistryClient> {
    RegistryClient::new(ClientOptions {
        // Nothing from this machine's /etc/docker/certs.d.
        certs_d_roots: opts.certs_d_roots.clone(),
        ..opts
    })
    .expect("client")
}

fn options() -> ClientOptions {
    ClientOptions {
        certs_d_roots: Vec::new(),
        ..ClientOptions::default()
    }
}

/// Seed a small image and read it back through ferry at `host`.
async fn round_trip(
    reg: &Registry,
    client: Arc<RegistryClient>,
    host: &str,
) -> Result<(), RegistryError> {
    let image = fixtures::oci_image(7, 1, "amd64");
    reg.seed("tls/img", Some("v1"), &image).await;
    let repo = Repository::new(client, host, "tls/img");
    let (desc, _) = repo.resolve("v1").await?;
    assert_eq!(desc.digest.to_string(), image.digest());
    assert_eq!(repo.list_tags().await?, vec!["v1"]);
    Ok(())
}

fn message(e: &RegistryError) -> String {
    ferry_oci::error_chain(e)
}

#[tokio::test]
async fn self_signed_ca_true_certificate_given_as_ca_file_is_accepted() {
    let reg = Registry::start(Mode::SelfSigned);
    let c = client(ClientOptions {
        ca_files: vec![reg.ca_file().unwrap().to_path_buf()],
        ..options()
    });
    round_trip(&reg, c, &format!("localhost:{}", reg.port()))
        .await
        .expect("a trusted self-signed certificate is accepted for the names it carries");
}

#[tokio::test]
async fn self_signed_certificate_still_checks_the_host_name() {
    let reg = Registry::start(Mode::SelfSigned);
    let c = client(ClientOptions {
        ca_files: vec![reg.ca_file().unwrap().to_path_buf()],
        ..options()
    });
    // The certificate names only `localhost`.
    let err = round_trip(&reg, c, &reg.host()).await.unwrap_err();
    let text = message(&err);
    assert!(matches!(err, RegistryError::Certificate { .. }), "{text}");
    for part in [
        "subject \"CN=localhost\"",
        "issuer \"CN=localhost\"",
        "SANs DNS:localhost",
        "CA:TRUE",
        "not valid for the host name 127.0.0.1",
    ] {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
    assert!(
        !text.contains("--ca-file"),
        "the CA file is not the problem: {text}"
    );
}

#[tokio::test]
async fn untrusted_self_signed_certificate_is_named_in_the_error() {
    let reg = Registry::start(Mode::SelfSigned);
    let err = round_trip(
        &reg,
        client(options()),
        &format!("localhost:{}", reg.port()),
    )
    .await
    .unwrap_err();
    let text = message(&err);
    for part in [
        "subject \"CN=localhost\"",
        "valid ",
        "self-signed",
        "--ca-file",
    ] {
        assert!(text.contains(part), "{part:?} missing in: {text}");
    }
}

/// A certs.d-style directory for `reg`: its CA as `ca.crt`, and with `identity` its client pair.
fn cert_dir(root: &Path, reg: &Registry, identity: bool) -> PathBuf {
    let dir = root.join(reg.host());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(reg.ca_file().unwrap(), dir.join("ca.crt")).unwrap();
    if identity {
        let (cert, key) = reg.client_identity().unwrap();
        std::fs::copy(cert, dir.join("client.cert")).unwrap();
        std::fs::copy(key, dir.join("client.key")).unwrap();
    }
    dir
}

#[tokio::test]
async fn certs_d_gives_the_ca_and_the_client_certificate_for_mtls() {
    let reg = Registry::start(Mode::Mtls);
    let root = tempfile::tempdir().unwrap();
    cert_dir(root.path(), &reg, true);
    let c = client(ClientOptions {
        certs_d_roots: vec![root.path().join("absent"), root.path().to_path_buf()],
        ..options()
    });
    round_trip(&reg, c, &reg.host())
        .await
        .expect("mTLS through certs.d");
}

#[tokio::test]
async fn cert_dir_serves_every_host() {
    let reg = Registry::start(Mode::Mtls);
    let root = tempfile::tempdir().unwrap();
    let dir = cert_dir(root.path(), &reg, true);
    let c = client(ClientOptions {
        cert_dir: Some(dir),
        ..options()
    });
    round_trip(&reg, c, &reg.host())
        .await
        .expect("mTLS through --cert-dir");
}

#[tokio::test]
async fn missing_client_certificate_says_what_the_registry_wants() {
    let reg = Registry::start(Mode::Mtls);
    let root = tempfile::tempdir().unwrap();
    cert_dir(root.path(), &reg, false);
    let c = client(ClientOptions {
        certs_d_roots: vec![root.path().to_path_buf()],
        ..options()
    });
    let err = round_trip(&reg, c, &reg.host()).await.unwrap_err();
    let text = message(&err);
    assert!(
        matches!(err, RegistryError::ClientCertificate { .. }),
        "{text}"
    );
    assert!(
        text.contains("client certificate") && text.contains("--cert-dir"),
        "{text}"
    );
}

#[tokio::test]
async fn ca_signed_leaf_with_ca_file_still_works() {
    let reg = Registry::start(Mode::Tls);
    let c = client(ClientOptions {
        ca_files: vec![reg.ca_file().unwrap().to_path_buf()],
        ..options()
    });
    round_trip(&reg, c, &reg.host())
        .await
        .expect("CA-signed leaf");
}
