//! The `ferry` binary: argument parsing, logging, progress and exit codes around the library crates.

mod cache;
mod cli;
mod copy;
mod export;
mod generate;
mod inspect;
mod layout_cmd;
mod login;
mod output;
mod package;
mod progress;
mod pull;
mod push;
mod registry_cmd;
mod registry_opts;
mod run_copy;
mod serve;
mod sync;
mod verify_cmd;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// Exit codes: 0 ok, 1 error, 2 usage (clap), 130 interrupted.
const EXIT_ERROR: u8 = 1;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let verbose = cli.verbose;
    // A server's Ctrl-C is its normal stop: it shuts down cleanly and exits 0.
    if let Command::Serve(args) = cli.command {
        let code = match runtime.block_on(serve::run(args, cli.quiet)) {
            Ok(()) => 0,
            Err(e) => {
                report(&e, verbose);
                EXIT_ERROR
            }
        };
        runtime.shutdown_timeout(std::time::Duration::from_secs(10));
        return ExitCode::from(code);
    }
    let code = runtime.block_on(async move {
        tokio::select! {
            result = run(cli) => match result {
                Ok(()) => 0,
                Err(e) => {
                    report(&e, verbose);
                    EXIT_ERROR
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted: nothing partial was recorded; run the same command again to continue");
                EXIT_INTERRUPTED
            }
        }
    });
    // Dropping the runtime drops every in-flight task, which removes their temp files. The cache's
    // background syncs are not waited for (their blobs are stamped for this boot only until synced).
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    ExitCode::from(code)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pull(args) => pull::run(args, cli.quiet).await,
        Command::Push(args) => push::run(args, cli.quiet).await,
        Command::Copy(args) => copy::run(args, cli.quiet).await,
        Command::Cache(cmd) => cache::run(cmd, cli.quiet).await,
        Command::Export(args) => export::run(args, cli.quiet).await,
        Command::Sync(args) => sync::run(args, cli.quiet).await,
        Command::Login(args) => login::run_login(args, cli.quiet).await,
        Command::Logout(args) => login::run_logout(args, cli.quiet).await,
        Command::Verify(args) => verify_cmd::run(args, cli.quiet).await,
        Command::Inspect(args) => inspect::run_inspect(args).await,
        Command::Digest(args) => inspect::run_digest(args).await,
        Command::Ls(args) => registry_cmd::run_ls(args).await,
        Command::Catalog(args) => registry_cmd::run_catalog(args).await,
        Command::Tag(args) => registry_cmd::run_tag(args, cli.quiet).await,
        Command::Delete(args) => registry_cmd::run_delete(args, cli.quiet).await,
        Command::Layout(cmd) => layout_cmd::run(cmd, cli.quiet).await,
        Command::Package(cmd) => package::run(cmd, cli.quiet).await,
        Command::Serve(args) => serve::run(args, cli.quiet).await,
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args, cli.quiet),
    }
}

fn report(e: &anyhow::Error, verbose: u8) {
    // Every error carries its cause once (as its source, not in its message): the chain is printed as is.
    if verbose >= 2 {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    } else {
        eprintln!("error: {e:#}");
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing::Level;
    let level = match (quiet, verbose) {
        (true, _) => Level::ERROR,
        (false, 0) => Level::WARN,
        (false, 1) => Level::INFO,
        (false, 2) => Level::DEBUG,
        (false, _) => Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(verbose >= 3)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}
