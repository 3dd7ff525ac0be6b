//! TLS per registry host: which CAs it is trusted with and which client certificate it gets (`--ca-file`,
//! then `--cert-dir` or the certs.d directories Docker and podman read), and the certificate verifier.
//!
//! The verifier is the platform's (rustls-platform-verifier, as reqwest uses by default), with one
//! addition from Go's crypto/x509: a certificate the user trusts by itself (given as a CA file, e.g. the
//! `openssl req -x509` one Docker's registry guide makes, which is `CA:TRUE`) is accepted as the server's
//! own certificate — still only while valid and only for the host names it carries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::cert_info::CertInfo;
use crate::error::RegistryError;

/// The standard places for per-registry certificate directories, most specific first (the order
/// containers/image searches them). `FERRY_CERTS_D_ROOTS` (`:`-separated) replaces them, for tests and
/// unusual installs.
pub fn default_certs_d_roots() -> Vec<PathBuf> {
    if let Some(roots) = std::env::var_os("FERRY_CERTS_D_ROOTS") {
        return std::env::split_paths(&roots)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let mut roots = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(PathBuf::from(home).join(".config/containers/certs.d"));
    }
    roots.push(PathBuf::from("/etc/containers/certs.d"));
    roots.push(PathBuf::from("/etc/docker/certs.d"));
    roots
}

/// What one host's TLS needs; hosts with equal settings share one HTTP client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct TlsSettings {
    /// PEM bundles of CAs trusted besides the system's: `--ca-file`, then the directory's `*.crt`.
    pub ca_files: Vec<PathBuf>,
    /// A client certificate chain and its key (`NAME.cert` + `NAME.key`), for registries that ask.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl TlsSettings {
    /// The settings for `authority` (`host` or `host:port`, as certs.d names its directories): the global
    /// CA files, plus the certificate directory: `cert_dir` for every host when given (skopeo's
    /// `--cert-dir`), else the first `<root>/<authority>` that exists.
    pub fn for_host(
        ca_files: &[PathBuf],
        cert_dir: Option<&Path>,
        certs_d_roots: &[PathBuf],
        authority: &str,
    ) -> Result<TlsSettings, RegistryError> {
        let mut settings = TlsSettings {
            ca_files: ca_files.to_vec(),
            identity: None,
        };
        let dir = match cert_dir {
            Some(d) => Some(d.to_path_buf()),
            None => certs_d_roots
                .iter()
                .map(|root| root.join(authority))
                .find(|d| d.is_dir()),
        };
        if let Some(dir) = dir {
            settings.read_dir(&dir)?;
        }
        Ok(settings)
    }

    /// `*.crt` are CAs; `NAME.cert` needs `NAME.key` and the other way round (as Docker requires).
    fn read_dir(&mut self, dir: &Path) -> Result<(), RegistryError> {
        let bad = |why: String| RegistryError::Config {
            why: format!("certificate directory {}: {why}", dir.display()),
            source: None,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| RegistryError::Config {
            why: format!("cannot read certificate directory {}", dir.display()),
            source: Some(Box::new(e)),
        })?;
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in &names {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            match ext {
                "crt" => self.ca_files.push(path.clone()),
                "cert" => {
                    let key = path.with_extension("key");
                    if !key.is_file() {
                        return Err(bad(format!(
                            "client certificate {} has no key {}",
                            path.display(),
                            key.display()
                        )));
                    }
                    // One client certificate per host: the first, in name order.
                    self.identity.get_or_insert((path.clone(), key));
                }
                "key" if !path.with_extension("cert").is_file() => {
                    return Err(bad(format!(
                        "key {} has no client certificate {}",
                        path.display(),
                        path.with_extension("cert").display()
                    )));
                }
                _ => {}
            }
        }
        tracing::debug!(dir = %dir.display(), ?self, "using certificate directory");
        Ok(())
    }

    /// The rustls configuration for these settings.
    /// `asked` is set when a server asks for a client certificate.
    pub fn client_config(
        &self,
        insecure: bool,
        asked: Arc<AtomicBool>,
    ) -> Result<rustls::ClientConfig, RegistryError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut anchors = Vec::new();
        for path in &self.ca_files {
            let pem = read(path, "CA file")?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    config_error(
                        format!("{} is not a PEM certificate bundle", path.display()),
                        e,
                    )
                })?;
            if certs.is_empty() {
                return Err(RegistryError::Config {
                    why: format!("{} contains no PEM certificate", path.display()),
                    source: None,
                });
            }
            anchors.extend(certs);
        }
        let verifier = Arc::new(Verifier {
            platform: std::sync::OnceLock::new(),
            anchors,
            insecure,
            provider: provider.clone(),
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("TLS protocol versions".into(), e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let key = match &self.identity {
            None => None,
            Some((cert, key)) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(&read(cert, "client certificate")?)
                        .collect::<Result<_, _>>()
                        .map_err(|e| {
                            config_error(format!("client certificate {}", cert.display()), e)
                        })?;
                let key_der = PrivateKeyDer::from_pem_slice(&read(key, "client key")?)
                    .map_err(|e| config_error(format!("client key {}", key.display()), e))?;
                let certified = CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| {
                    config_error(
                        format!(
                            "client certificate {} with key {}",
                            cert.display(),
                            key.display()
                        ),
                        e,
                    )
                })?;
                Some(Arc::new(certified))
            }
        };
        let mut config = builder.with_client_cert_resolver(Arc::new(ClientCert { key, asked }));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path)
        .map_err(|e| config_error(format!("cannot read {what} {}", path.display()), e))
}

fn config_error(why: String, e: impl std::error::Error + Send + Sync + 'static) -> RegistryError {
    RegistryError::Config {
        why,
        source: Some(Box::new(e)),
    }
}

/// Hands out the client certificate, if any, and notes that a server asked for one.
#[derive(Debug)]
struct ClientCert {
    key: Option<Arc<CertifiedKey>>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _acceptable_issuers: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// Why a server certificate was refused, naming the certificate. Travels inside rustls's error
/// (`CertificateError::Other`) to where ferry maps transport errors.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the server presented {presented}; {reason}")]
pub struct CertificateRefused {
    /// The certificate, described; or why it could not be read.
    pub presented: String,
    /// Why it was refused (expired, wrong name, unknown issuer), with what would fix it.
    pub reason: String,
    /// Whether trusting another CA could fix it (unknown issuer, CA used as end entity).
    pub trust_would_help: bool,
}

#[derive(Debug)]
struct Verifier {
    /// The system's roots plus `anchors`, loaded at the first TLS handshake: reading and parsing the
    /// system store (hundreds of files) took most of ferry's start-up, which a plain-HTTP registry
    /// never needs.
    platform: std::sync::OnceLock<Result<rustls_platform_verifier::Verifier, String>>,
    /// Every certificate the user gave as trusted (CA files, certs.d `*.crt`).
    anchors: Vec<CertificateDer<'static>>,
    insecure: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl Verifier {
    fn platform(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.platform
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new_with_extra_roots(
                    self.anchors.clone(),
                    self.provider.clone(),
                )
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| {
                rustls::Error::General(format!("cannot load the trusted CA certificates: {e}"))
            })
    }

    /// A certificate the user trusts by itself, presented as the server's: valid now and for `name`.
    fn check_trusted_self(
        &self,
        cert: &CertificateDer<'_>,
        info: Option<&CertInfo>,
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), String> {
        let info = info.ok_or("it cannot be parsed")?;
        let now = now.as_secs() as i64;
        if now < info.not_before {
            return Err("it is not valid yet".into());
        }
        if now > info.not_after {
            return Err("it has expired".into());
        }
        let parsed =
            rustls::server::ParsedCertificate::try_from(cert).map_err(|e| e.to_string())?;
        rustls::client::verify_server_name(&parsed, name)
            .map_err(|_| format!("it is not valid for the host name {}", name.to_str()))
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let err = match self.platform()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => return Ok(v),
            Err(e) if self.insecure => {
                tracing::debug!(
                    "accepting an untrusted certificate (--insecure-skip-tls-verify): {e}"
                );
                return Ok(ServerCertVerified::assertion());
            }
            Err(e) => e,
        };
        let info = CertInfo::parse(end_entity);
        let presented = info.as_ref().map_or_else(
            || "a certificate ferry cannot parse".to_string(),
            |i| format!("a certificate with {i}"),
        );
        let refuse = |reason: String, trust_would_help: bool| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(CertificateRefused {
                    presented: presented.clone(),
                    reason,
                    trust_would_help,
                }),
            )))
        };
        if self
            .anchors
            .iter()
            .any(|a| a.as_ref() == end_entity.as_ref())
        {
            // Go's crypto/x509 accepts a trusted certificate presented by itself: a chain of one.
            return match self.check_trusted_self(end_entity, info.as_ref(), server_name, now) {
                Ok(()) => Ok(ServerCertVerified::assertion()),
                Err(why) => Err(refuse(
                    format!("it is one of the trusted certificates given, but {why}"),
                    false,
                )),
            };
        }
        let (reason, trust_would_help) = describe(&err, info.as_ref(), server_name);
        Err(refuse(reason, trust_would_help))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why the platform verifier refused, in words, and whether trusting a CA would help.
fn describe(err: &rustls::Error, info: Option<&CertInfo>, name: &ServerName<'_>) -> (String, bool) {
    let rustls::Error::InvalidCertificate(cert_err) = err else {
        return (err.to_string(), false);
    };
    let ca = info.is_some_and(|i| i.is_ca);
    match cert_err {
        CertificateError::UnknownIssuer if info.is_some_and(|i| i.subject == i.issuer) => (
            "it is self-signed and not among the trusted certificates".into(),
            true,
        ),
        CertificateError::UnknownIssuer => ("its issuer is not a trusted CA".into(), true),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            ("it has expired".into(), false)
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            ("it is not valid yet".into(), false)
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
            format!("it is not valid for the host name {}", name.to_str()),
            false,
        ),
        CertificateError::Other(other)
            if ca && format!("{other:?}").contains("CaUsedAsEndEntity") =>
        {
            (
                if info.is_some_and(|i| i.subject == i.issuer) {
                    "it is a self-signed CA:TRUE certificate presented as the server's own, and not one of \
                 the trusted certificates given (give this very certificate with --ca-file to trust it)"
                    .into()
                } else {
                    "it is a CA certificate (CA:TRUE) presented as the server's own, and not one of the \
                 trusted certificates given"
                    .into()
                },
                true,
            )
        }
        other => (format!("{other}"), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_dirs_pair_certs_with_keys() {
        let dir = std::env::temp_dir().join(format!("ferry-certs-d-{}", std::process::id()));
        let host = dir.join("reg.example:5000");
        std::fs::create_dir_all(&host).unwrap();
        for f in ["ca.crt", "client.cert", "client.key", "README"] {
            std::fs::write(host.join(f), "x").unwrap();
        }
        let roots = vec![dir.join("missing"), dir.clone()];
        let s = TlsSettings::for_host(&[PathBuf::from("/g.pem")], None, &roots, "reg.example:5000")
            .unwrap();
        assert_eq!(
            s.ca_files,
            vec![PathBuf::from("/g.pem"), host.join("ca.crt")]
        );
        assert_eq!(
            s.identity,
            Some((host.join("client.cert"), host.join("client.key")))
        );
        let none = TlsSettings::for_host(&[], None, &roots, "other:5000").unwrap();
        assert_eq!(none, TlsSettings::default());
        // --cert-dir applies to every host and replaces certs.d.
        let s = TlsSettings::for_host(&[], Some(&host), &[], "any").unwrap();
        assert_eq!(s.ca_files, vec![host.join("ca.crt")]);
        std::fs::remove_file(host.join("client.key")).unwrap();
        let err = TlsSettings::for_host(&[], Some(&host), &[], "any").unwrap_err();
        assert!(err.to_string().contains("has no key"), "{err}");
        std::fs::remove_file(host.join("client.cert")).unwrap();
        std::fs::write(host.join("lone.key"), "x").unwrap();
        let err = TlsSettings::for_host(&[], Some(&host), &[], "any").unwrap_err();
        assert!(
            err.to_string().contains("has no client certificate"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
