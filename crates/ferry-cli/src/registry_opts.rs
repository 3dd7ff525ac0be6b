//! Registry flags → a registry client.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_registry::{ClientOptions, Credential, CredentialStore, RegistryClient};

use crate::cache::parse_size;
use crate::cli::{RegistryArgs, UploadArgs};

pub fn client(
    args: &RegistryArgs,
    upload: Option<&UploadArgs>,
) -> anyhow::Result<Arc<RegistryClient>> {
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        Some(s.trim_end_matches(['\n', '\r']).to_string())
    } else {
        args.password.clone()
    };
    let explicit = match (&args.username, password) {
        (Some(u), Some(p)) => Some(Credential::Basic {
            username: u.clone(),
            password: p,
        }),
        (None, Some(_)) => bail!("--password needs --username"),
        (Some(_), None) => {
            bail!("--username needs --password, --password-stdin or $FERRY_PASSWORD")
        }
        (None, None) => None,
    };
    build(
        args.plain_http,
        args.insecure_skip_tls_verify,
        &args.ca_file,
        args.cert_dir.as_deref(),
        explicit,
        upload,
    )
}

/// A client with these transport options (`cert_dir`: `--cert-dir`, else certs.d per registry); `explicit` credentials apply to every registry it talks to,
/// otherwise the credential files and helpers are consulted per registry.
pub fn build(
    plain_http: bool,
    insecure_skip_tls_verify: bool,
    ca_files: &[PathBuf],
    cert_dir: Option<&Path>,
    explicit: Option<Credential>,
    upload: Option<&UploadArgs>,
) -> anyhow::Result<Arc<RegistryClient>> {
    let mut opts = ClientOptions {
        plain_http,
        insecure_skip_tls_verify,
        ca_files: ca_files.to_vec(),
        cert_dir: cert_dir.map(Path::to_path_buf),
        credentials: CredentialStore::from_env(explicit),
        ..ClientOptions::default()
    };
    if let Some(u) = upload {
        opts.chunk_threshold = parse_size(&u.chunk_threshold)?;
        opts.chunk_size = parse_size(&u.chunk_size)?.max(1);
    }
    Ok(RegistryClient::new(opts)?)
}

/// `--x-username/--x-password` pairs as a credential.
pub fn credential(username: &Option<String>, password: &Option<String>) -> Option<Credential> {
    match (username, password) {
        (Some(u), Some(p)) => Some(Credential::Basic {
            username: u.clone(),
            password: p.clone(),
        }),
        _ => None,
    }
}
