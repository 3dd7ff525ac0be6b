//! `ferry login` and `ferry logout`: [`ferry_registry::login`] with the flags given, printed.

use anyhow::bail;
use ferry_oci::Reference;
use ferry_registry::{Credential, CredentialLocation};
use serde::Serialize;

use crate::cli::{LoginArgs, LogoutArgs};
use crate::output::print_json;
use crate::registry_opts;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoggedIn<'a> {
    registry: &'a str,
    #[serde(flatten)]
    stored: &'a CredentialLocation,
    username: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoggedOut<'a> {
    registry: &'a str,
    /// Whether anything was stored (and is now removed).
    removed: bool,
    #[serde(flatten)]
    stored: &'a Option<CredentialLocation>,
}

pub async fn run_login(args: LoginArgs, quiet: bool) -> anyhow::Result<()> {
    let host = Reference::parse_host(&args.host)?;
    let password = match (args.password_stdin, args.password) {
        (true, _) => registry_opts::read_password()?,
        (false, Some(p)) => p,
        (false, None) => bail!("give the password with --password-stdin, -p or $FERRY_PASSWORD"),
    };
    let user = args.username;
    let credential = Credential::Basic {
        username: user.clone(),
        password: password.clone(),
    };
    let client = registry_opts::connect(&args.connect, Some(credential), None)?;
    let stored = ferry_registry::login::login(&client, &host, &user, &password).await?;
    if args.json {
        return print_json(&LoggedIn {
            registry: &host,
            stored: &stored,
            username: &user,
        });
    }
    if !quiet {
        println!("Login succeeded: {user} on {host}, stored in {stored}");
    }
    Ok(())
}

pub async fn run_logout(args: LogoutArgs, quiet: bool) -> anyhow::Result<()> {
    let host = Reference::parse_host(&args.host)?;
    let stored = ferry_registry::login::logout(&host).await?;
    if args.json {
        let removed = stored.is_some();
        return print_json(&LoggedOut {
            registry: &host,
            removed,
            stored: &stored,
        });
    }
    if !quiet {
        match stored {
            Some(s) => println!("Removed the credentials for {host} from {s}"),
            None => println!("Not logged in to {host}"),
        }
    }
    Ok(())
}
