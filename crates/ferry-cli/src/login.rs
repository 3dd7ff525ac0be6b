//! `ferry login` and `ferry logout`: [`ferry_registry::login`] with the flags given, printed.

use anyhow::bail;
use ferry_oci::Reference;
use ferry_registry::{Credential, CredentialLocation};
use serde::Serialize;

use crate::cli::{LoginArgs, LogoutArgs};
use crate::output::report;
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
    let out = LoggedIn {
        registry: &host,
        stored: &stored,
        username: &user,
    };
    report(args.json, quiet, &out, |_| {
        println!("Login succeeded: {user} on {host}, stored in {stored}")
    })
}

pub async fn run_logout(args: LogoutArgs, quiet: bool) -> anyhow::Result<()> {
    let host = Reference::parse_host(&args.host)?;
    let stored = ferry_registry::login::logout(&host).await?;
    let out = LoggedOut {
        registry: &host,
        removed: stored.is_some(),
        stored: &stored,
    };
    report(args.json, quiet, &out, |out| match out.stored {
        Some(s) => println!("Removed the credentials for {host} from {s}"),
        None => println!("Not logged in to {host}"),
    })
}
