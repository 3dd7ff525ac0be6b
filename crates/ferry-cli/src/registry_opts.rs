//! Registry flags → a registry client.

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_registry::{ClientOptions, Credential, CredentialStore, RegistryClient};

use crate::cli::{ConnectArgs, RegistryArgs, UploadArgs};

pub fn client(
    args: &RegistryArgs,
    upload: Option<&UploadArgs>,
) -> anyhow::Result<Arc<RegistryClient>> {
    Ok(RegistryClient::new(options(args, upload)?)?)
}

/// The client options these flags describe (credentials, TLS, mirrors, request budgets, uploads).
pub fn options(args: &RegistryArgs, upload: Option<&UploadArgs>) -> anyhow::Result<ClientOptions> {
    let password = if args.password_stdin {
        Some(read_password()?)
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
    let mut opts = connect_options(&args.connect, explicit, upload)?;
    opts.registries =
        ferry_registry::RegistriesConf::load_given_or_own(args.registries_conf.as_deref())?;
    opts.host_limits = ferry_registry::HostLimits {
        requests_per_second: args.max_requests_per_second,
        concurrency: args.max_requests_per_host.map(|n| n as usize),
    };
    if let Some(r) = args.max_requests_per_second
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--max-requests-per-second must be a positive number, not {r}");
    }
    Ok(opts)
}

/// `--password-stdin`: standard input, without its line end.
pub fn read_password() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the password from standard input")?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// A client for these transport flags (`cert_dir`: `--cert-dir`, else certs.d per registry); `explicit`
/// credentials apply to every registry it talks to, otherwise the credential files and helpers are
/// consulted per registry.
pub fn connect(
    connect: &ConnectArgs,
    explicit: Option<Credential>,
    upload: Option<&UploadArgs>,
) -> anyhow::Result<Arc<RegistryClient>> {
    Ok(RegistryClient::new(connect_options(
        connect, explicit, upload,
    )?)?)
}

fn connect_options(
    c: &ConnectArgs,
    explicit: Option<Credential>,
    upload: Option<&UploadArgs>,
) -> anyhow::Result<ClientOptions> {
    let mut opts = ClientOptions {
        plain_http: c.plain_http,
        insecure_skip_tls_verify: c.insecure_skip_tls_verify,
        ca_files: c.ca_file.clone(),
        cert_dir: c.cert_dir.clone(),
        credentials: CredentialStore::from_env(explicit),
        ..ClientOptions::default()
    };
    if let Some(u) = upload {
        opts.chunk_threshold = u.chunk_threshold;
        if let Some(size) = u.chunk_size {
            opts.chunk_size = size.max(1);
        }
    }
    Ok(opts)
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
