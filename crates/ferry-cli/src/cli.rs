//! Command-line definitions. Option names follow Zarf where Zarf has one.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ferry",
    version,
    about = "Move container images and other OCI artifacts into and out of air-gapped environments",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More output: -v info, -vv debug (with error cause chains), -vvv trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Print nothing but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pull images and artifacts from registries into an OCI image layout (a Zarf `images/` directory).
    #[command(after_help = "Examples:
  ferry pull nginx:1.25 ghcr.io/stefanprodan/podinfo:6.4.0 -o images
  ferry pull -f zarf.yaml -o build/images -a arm64
  ferry pull -f images.txt -o images --registry-override docker.io=mirror.local:5000
  ferry pull 127.0.0.1:5000/app@sha256:<digest> -o images     # an index by digest is kept whole")]
    Pull(PullArgs),
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Image references (`nginx:1.25`, `ghcr.io/org/app@sha256:…`, `oci://host/chart:1.0`).
    pub references: Vec<String>,

    /// Read references from FILE: one per line (`#` comments and blank lines ignored), or every
    /// `components[].images` entry when FILE is a zarf.yaml.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The OCI layout directory to write (created if missing, added to if it exists).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// Architecture to select from multi-platform images (linux/<ARCH>). Default: this machine's.
    #[arg(short = 'a', long = "architecture", value_name = "ARCH")]
    pub architecture: Option<String>,

    /// Platform to select (os/arch[/variant]), even from an index pinned by digest.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", conflicts_with_all = ["architecture", "all_platforms"])]
    pub platform: Option<String>,

    /// Keep every platform of multi-platform images.
    #[arg(long)]
    pub all_platforms: bool,

    /// Fetch references starting with SRC from DST instead (first match wins; the recorded name is unchanged).
    #[arg(long = "registry-override", value_name = "SRC=DST")]
    pub registry_overrides: Vec<String>,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub transfer: TransferArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// Node copies (manifests, configs, layers) in flight at once, per image.
    #[arg(long, default_value_t = 6, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub oci_concurrency: u32,

    /// Blob cache directory (a Zarf cache such as ~/.zarf-cache works). Default: $FERRY_CACHE, else
    /// $XDG_CACHE_HOME/ferry/v1, else ~/.cache/ferry/v1.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache: Option<PathBuf>,

    /// Do not read or write the blob cache.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Args, Debug)]
pub struct RegistryArgs {
    /// Use plain HTTP for every registry (by default HTTPS, with a proven fallback for local hosts).
    #[arg(long)]
    pub plain_http: bool,

    /// Accept any TLS certificate (self-signed, expired, wrong host).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,

    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,

    /// Registry username (otherwise the Docker/podman credential files and helpers are used).
    #[arg(short, long, requires = "password_source")]
    pub username: Option<String>,

    /// Registry password (prefer --password-stdin or $FERRY_PASSWORD: arguments are visible to other users).
    #[arg(
        short,
        long,
        env = "FERRY_PASSWORD",
        hide_env_values = true,
        group = "password_source"
    )]
    pub password: Option<String>,

    /// Read the password from standard input.
    #[arg(long, group = "password_source")]
    pub password_stdin: bool,
}
