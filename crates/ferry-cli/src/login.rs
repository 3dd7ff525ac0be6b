//! `ferry login` and `ferry logout`: credentials checked against the registry, then kept where the Docker
//! tools and ferry look for them.

use std::io::Read;

use anyhow::{Context, bail};
use ferry_registry::login::{docker_config_path, erase_credentials, store_credentials};
use ferry_registry::{Credential, CredentialLocation};
use serde::Serialize;

use crate::cli::{LoginArgs, LogoutArgs};
use crate::output::print_json;
use crate::registry_cmd::registry_host;
use crate::registry_opts;

/// Where credentials are, in `--json` output.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    registry: String,
    /// `file` or `helper`.
    store: &'static str,
    /// The Docker config file, for `file`.
    path: Option<String>,
    /// `docker-credential-<helper>`, for `helper`.
    helper: Option<String>,
}

impl Stored {
    fn new(registry: &str, location: &CredentialLocation) -> Stored {
        match location {
            CredentialLocation::File(p) => Stored {
                registry: registry.to_string(),
                store: "file",
                path: Some(p.display().to_string()),
                helper: None,
            },
            CredentialLocation::Helper(h) => Stored {
                registry: registry.to_string(),
                store: "helper",
                path: None,
                helper: Some(h.clone()),
            },
        }
    }

    fn describe(&self) -> String {
        match (&self.path, &self.helper) {
            (Some(p), _) => p.clone(),
            (None, Some(h)) => format!("docker-credential-{h}"),
            (None, None) => String::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginOutput {
    #[serde(flatten)]
    stored: Stored,
    username: String,
}

pub async fn run_login(args: LoginArgs, quiet: bool) -> anyhow::Result<()> {
    let host = registry_host(&args.host)?;
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match args.password {
            Some(p) => p,
            None => bail!("give the password with --password-stdin, -p or $FERRY_PASSWORD"),
        }
    };
    if password.is_empty() {
        bail!("the password for {host} is empty");
    }
    let path =
        docker_config_path().context("no Docker config location: set $DOCKER_CONFIG or $HOME")?;
    let credential = Credential::Basic {
        username: args.username.clone(),
        password: password.clone(),
    };
    let client = registry_opts::connect(&args.connect, Some(credential), None)?;
    client.check_access(&host).await.with_context(|| {
        format!(
            "logging in to {host} as {}: nothing was stored",
            args.username
        )
    })?;
    let (h, user) = (host.clone(), args.username.clone());
    let location =
        tokio::task::spawn_blocking(move || store_credentials(&path, &h, &user, &password))
            .await
            .context("credential store task failed")?
            .with_context(|| format!("storing the credentials for {host}"))?;
    let stored = Stored::new(&host, &location);
    if args.json {
        return print_json(&LoginOutput {
            stored,
            username: args.username,
        });
    }
    if !quiet {
        println!(
            "Login succeeded: {} on {host}, stored in {}",
            args.username,
            stored.describe()
        );
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogoutOutput {
    registry: String,
    /// Whether anything was stored (and is now removed).
    removed: bool,
    store: Option<&'static str>,
    path: Option<String>,
    helper: Option<String>,
}

pub async fn run_logout(args: LogoutArgs, quiet: bool) -> anyhow::Result<()> {
    let host = registry_host(&args.host)?;
    let path =
        docker_config_path().context("no Docker config location: set $DOCKER_CONFIG or $HOME")?;
    let h = host.clone();
    let erased = tokio::task::spawn_blocking(move || erase_credentials(&path, &h))
        .await
        .context("credential store task failed")?
        .with_context(|| format!("removing the credentials for {host}"))?;
    let stored = erased.as_ref().map(|l| Stored::new(&host, l));
    if args.json {
        return print_json(&LogoutOutput {
            registry: host,
            removed: stored.is_some(),
            store: stored.as_ref().map(|s| s.store),
            path: stored.as_ref().and_then(|s| s.path.clone()),
            helper: stored.as_ref().and_then(|s| s.helper.clone()),
        });
    }
    if !quiet {
        match stored {
            Some(s) => println!("Removed the credentials for {host} from {}", s.describe()),
            None => println!("Not logged in to {host}"),
        }
    }
    Ok(())
}
