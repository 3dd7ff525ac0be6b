//! Registry flags → a registry client.

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_registry::{ClientOptions, Credential, CredentialStore, RegistryClient};

use crate::cli::RegistryArgs;

pub fn client(args: &RegistryArgs) -> anyhow::Result<Arc<RegistryClient>> {
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
    let opts = ClientOptions {
        plain_http: args.plain_http,
        insecure_skip_tls_verify: args.insecure_skip_tls_verify,
        ca_files: args.ca_file.clone(),
        credentials: CredentialStore::from_env(explicit),
        ..ClientOptions::default()
    };
    Ok(RegistryClient::new(opts)?)
}
