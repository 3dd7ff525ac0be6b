//! Command-line definitions. Option names follow Zarf where Zarf has one.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ferry_oci::PlatformSpec;

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

    /// Push the images of an OCI layout (or a Zarf package directory) into a registry, named as Zarf names them.
    #[command(after_help = "Examples:
  ferry push images --registry 127.0.0.1:31999                 # every image, with and without the -zarf-<crc> tag
  ferry push build/my-package --registry registry.local/ns nginx:1.25   # a subset, into a namespace
  ferry push images docker.io/library/nginx:1.25 registry.local/web:prod   # one image, explicit name")]
    Push(PushArgs),

    /// Copy an image from any location to a registry or layout (a whole index unless a platform is chosen).
    #[command(after_help = "Examples:
  ferry copy ghcr.io/stefanprodan/podinfo:6.4.0 registry.local/podinfo:6.4.0
  ferry copy --all-tags ghcr.io/stefanprodan/podinfo registry.local/mirror/podinfo
  ferry copy nginx:1.25 registry.local/nginx:1.25 -a arm64")]
    Copy(CopyArgs),

    /// Mirror what a skopeo-sync YAML file names into a registry prefix, an OCI layout or an archive.
    #[command(after_help = "Examples:
  ferry sync -f sync.yaml registry.local/mirror             # DEST/<last path component>:<tag>
  ferry sync -f sync.yaml registry.local --scoped           # DEST/<registry>/<repository>:<tag>
  ferry sync -f sync.yaml oci:images --lock sync.lock       # into a layout, with a lock file
  ferry sync -f sync.yaml oci-archive:week-42.tar.zst --plan --json   # bytes that would move, disk room")]
    Sync(SyncArgs),

    /// Write an OCI layout (or a Zarf package's images/) as one archive file that travels as a unit.
    #[command(after_help = "Examples:
  ferry export images -o images.tar.zst       # zstd (compressed layers are stored as they are)
  ferry export images -o images.tar           # plain tar; read back with oci-archive:images.tar")]
    Export(ExportArgs),

    /// Inspect and manage the shared blob cache.
    #[command(subcommand)]
    Cache(CacheCommand),

    /// Check credentials against a registry, then store them in the Docker config (or its credential helper).
    #[command(after_help = "Examples:
  ferry login registry.local:5000 -u admin --password-stdin < password.txt
  echo \"$TOKEN\" | ferry login ghcr.io -u me --password-stdin
  ferry login 127.0.0.1:31999 -u zarf-push -p \"$PASSWORD\" --plain-http")]
    Login(LoginArgs),

    /// Remove the credentials stored for a registry.
    #[command(after_help = "Examples:
  ferry logout registry.local:5000
  ferry logout docker.io")]
    Logout(LogoutArgs),

    /// Check an image's cosign signatures against a key or a policy, and print who signed what.
    #[command(after_help = "Examples:
  ferry verify registry.local/team/app:1 --verify-key cosign.pub
  ferry verify oci:images:registry.local/team/app:1 --verify-policy policy.json --json")]
    Verify(VerifyArgs),

    /// Show an image's descriptor, platforms, layers, total size and annotations (registry or OCI layout).
    #[command(after_help = "Examples:
  ferry inspect nginx:1.25                                   # an index: its platforms
  ferry inspect nginx:1.25 --platform linux/arm64 --config   # one platform's config blob
  ferry inspect --raw ghcr.io/org/app@sha256:<digest> > manifest.json   # the exact manifest bytes
  ferry inspect oci:images:docker.io/library/nginx:1.25      # an entry of a layout (Zarf images/), by name
  ferry inspect oci:images:library/nginx:1.25 --json
  ferry inspect docker-archive:saved.tar")]
    Inspect(InspectArgs),

    /// Print the digest of the manifest a reference names (a HEAD request when the registry allows).
    #[command(after_help = "Examples:
  ferry digest nginx:1.25
  ferry digest nginx:1.25 --platform linux/arm64
  ferry digest oci:images:docker.io/library/nginx:1.25")]
    Digest(DigestArgs),

    /// List the tags of a repository.
    #[command(after_help = "Examples:
  ferry ls registry.local:5000/library/nginx
  ferry ls ghcr.io/stefanprodan/podinfo --json")]
    Ls(LsArgs),

    /// List the repositories of a registry (`/v2/_catalog`).
    #[command(after_help = "Examples:
  ferry catalog 127.0.0.1:31999
  ferry catalog registry.local:5000 --page-size 500 --json")]
    Catalog(CatalogArgs),

    /// Point more tags at the manifest a reference names (the manifest is sent again; no blob moves).
    #[command(after_help = "Examples:
  ferry tag registry.local/app:1.4.2 stable
  ferry tag registry.local/app@sha256:<digest> 1.4 latest")]
    Tag(TagArgs),

    /// Delete a manifest by digest (a tag is resolved to its digest first: every tag on it goes too).
    #[command(after_help = "Examples:
  ferry delete registry.local/app@sha256:<digest>
  ferry delete registry.local/app:old       # resolves the tag, says so, deletes that digest")]
    Delete(DeleteArgs),

    /// Look at and tidy an OCI image layout (a Zarf package's images/ directory).
    #[command(subcommand)]
    Layout(LayoutCommand),

    /// Inspect, verify, publish and pull Zarf packages (directory, .tar, .tar.zst or oci://).
    #[command(subcommand)]
    Package(PackageCommand),

    /// Serve a layout, a Zarf package, an OCI archive or the blob cache as a registry (OCI distribution API).
    #[command(after_help = "Examples:
  ferry serve zarf-package-app-amd64-1.0.0.tar.zst          # a package, read in place, on 127.0.0.1:5000
  ferry serve images --listen 0.0.0.0:5000 --tls-cert srv.crt --tls-key srv.key --htpasswd htpasswd
  ferry serve images --zarf-names                           # also as <tag>-zarf-<crc32>, as Zarf pushed them
  ferry serve staging --writable                            # docker push / ferry push into the layout
  ferry serve oci-archive:images.tar
  ferry serve --cache                                       # the blob cache, by digest")]
    Serve(ServeArgs),

    /// Print a shell completion script.
    #[command(after_help = "Examples:
  ferry completions bash > /etc/bash_completion.d/ferry
  ferry completions zsh > \"${fpath[1]}/_ferry\"
  ferry completions fish > ~/.config/fish/completions/ferry.fish")]
    Completions(CompletionsArgs),

    /// Print the man page (roff), or write one page per command into a directory.
    #[command(after_help = "Examples:
  ferry man | man -l -
  ferry man --out /usr/local/share/man/man1")]
    Man(ManArgs),
}

#[derive(Subcommand, Debug)]
pub enum LayoutCommand {
    /// List the images of a layout: name, digest, media type, platforms.
    #[command(after_help = "Examples:
  ferry layout ls images
  ferry layout ls build/my-package/images --json")]
    Ls(LayoutArgs),

    /// Remove the blobs no entry of index.json reaches (what is left after entries were removed).
    #[command(after_help = "Examples:
  ferry layout gc images --dry-run
  ferry layout gc images --min-age 0s      # also blobs written in the last hour")]
    Gc(LayoutGcArgs),
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port] (`docker.io` for Docker Hub).
    pub host: String,

    /// Username.
    #[arg(short, long)]
    pub username: String,

    /// Password or token (prefer --password-stdin or $FERRY_PASSWORD: arguments are visible to other users).
    #[arg(short, long, env = "FERRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Read the password from standard input (it wins over -p and $FERRY_PASSWORD).
    #[arg(long)]
    pub password_stdin: bool,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host[:port].
    pub host: String,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How to reach a registry, without credentials.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Use plain HTTP for every registry (by default HTTPS, with a proven fallback for local hosts).
    #[arg(long)]
    pub plain_http: bool,

    /// Accept any TLS certificate (self-signed, expired, wrong host).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,

    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,

    /// Use the certificates in DIR for every registry (`*.crt` CAs, `NAME.cert` + `NAME.key` client
    /// certificate), instead of the per-registry certs.d directories (/etc/containers/certs.d/HOST:PORT/,
    /// /etc/docker/certs.d/HOST:PORT/, ~/.config/containers/certs.d/HOST:PORT/).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A registry reference (`nginx:1.25`, `host/repo@sha256:…`); a layout entry, `oci:DIR[:NAME]` (NAME as
    /// the layout names it, Crane or ORAS era, or a digest); `docker-archive:FILE[:REF]`,
    /// `oci-archive:FILE[:REF]` or `docker-daemon:IMAGE`.
    pub reference: String,

    /// Print the manifest bytes exactly as stored.
    #[arg(long, conflicts_with_all = ["config", "json"])]
    pub raw: bool,

    /// Print the config blob exactly as stored.
    #[arg(long, conflicts_with = "json")]
    pub config: bool,

    /// For an index: inspect the first manifest for this platform (os/arch[/variant]).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<PlatformSpec>,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct DigestArgs {
    /// A registry reference, a layout entry (`oci:DIR[:NAME]`), an archive or `docker-daemon:IMAGE`.
    pub reference: String,

    /// For an index: the digest of the first manifest for this platform (os/arch[/variant]).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<PlatformSpec>,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Repository (`registry.local/library/nginx`, `nginx`), without tag or digest.
    pub repository: String,

    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Args, Debug)]
pub struct CatalogArgs {
    /// Registry host[:port].
    pub host: String,

    #[command(flatten)]
    pub list: ListArgs,
}

/// How a registry listing is asked for and printed.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Items per request (`n=`); the registry's default when absent (100 for distribution).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub page_size: Option<u32>,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// The manifest to tag: a reference by tag or digest.
    pub reference: String,

    /// The new tags, in the same repository.
    #[arg(required = true, value_name = "NEWTAG")]
    pub tags: Vec<String>,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The manifest to delete: `repo@sha256:…`, or `repo:tag` (resolved to its digest first).
    pub reference: String,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// A layout to look at.
#[derive(Args, Debug)]
pub struct LayoutArgs {
    /// The OCI layout directory (or a Zarf package directory containing images/).
    pub dir: PathBuf,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LayoutGcArgs {
    #[command(flatten)]
    pub layout: LayoutArgs,

    /// Report what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Keep unreferenced blobs added more recently than this (a pull still running writes blobs before it
    /// records its image); `0s` removes them all.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = crate::cache::parse_duration)]
    pub min_age: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write ferry.1 and one page per command (ferry-pull.1, …) into DIR instead of printing ferry.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Print the cache directory.
    Dir(CacheArgs),
    /// List cached blobs (digest, size, last use).
    Ls(CacheArgs),
    /// Count the cached blobs and their bytes.
    Du(CacheArgs),
    /// Re-hash every cached blob; corrupt ones are removed (and fetched again when next needed).
    Verify(CacheArgs),
    /// Remove blobs not used for a while, or the least recently used ones above a size.
    #[command(after_help = "Examples:
  ferry cache prune --older-than 30d
  ferry cache prune --max-size 50G")]
    Prune(PruneArgs),
    /// Remove every cached blob.
    Clean(CacheArgs),
}

#[derive(Args, Debug)]
pub struct CacheArgs {
    /// Cache directory (default: $FERRY_CACHE, else $XDG_CACHE_HOME/ferry/v1, else ~/.cache/ferry/v1).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    /// How long prune and clean wait for other ferry processes using the cache (e.g. 30s, 5m).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = crate::cache::parse_duration)]
    pub lock_timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub common: CacheArgs,

    /// Remove blobs last used longer ago than this (e.g. 12h, 30d).
    #[arg(long, value_name = "DURATION", required_unless_present = "max_size", value_parser = crate::cache::parse_duration)]
    pub older_than: Option<std::time::Duration>,

    /// Then remove least recently used blobs until the cache is at most this big (e.g. 500M, 50G).
    #[arg(long, value_name = "SIZE", value_parser = crate::cache::parse_size)]
    pub max_size: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The OCI layout directory (or a Zarf package directory with images/).
    pub layout: PathBuf,

    /// The archive to write: `.tar`, `.tar.gz` or `.tar.zst` (by extension).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Write a delta: every manifest and index, but only the blobs BASE lacks. BASE is what the far side
    /// already has: an earlier layout, an oci-archive (.tar/.tar.gz/.tar.zst) or a `ferry sync` lock file.
    #[arg(long, value_name = "BASE")]
    pub since: Option<PathBuf>,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// An OCI layout directory, a Zarf package (a directory with images/, a .tar or a .tar.zst; verified
    /// first), or an archive of a layout (`oci-archive:FILE`).
    pub source: PathBuf,

    /// With --registry: the images to push (default all). Without: REF-IN-LAYOUT DEST-REF.
    pub images: Vec<String>,

    /// Target registry, HOST[:PORT][/NAMESPACE]: images are pushed under Zarf's names there.
    #[arg(long, value_name = "HOST[:PORT][/NS]")]
    pub registry: Option<String>,

    /// Push only the plain name, not the `<tag>-zarf-<crc>` one.
    #[arg(long)]
    pub no_checksum: bool,

    /// Push a Zarf package without checking it against its checksums.txt first (a warning says so).
    #[arg(long)]
    pub skip_verify: bool,

    /// A Zarf package must be signed by this public key (zarf.bundle.sig, else zarf.yaml.sig, as Zarf checks
    /// on load); an unsigned package is refused, saying so. Checked before anything is sent.
    #[arg(long, value_name = "KEY.pub")]
    pub key: Option<PathBuf>,

    /// Continue with the other images when one fails (the exit code is still 1).
    #[arg(long)]
    pub keep_going: bool,

    /// Attempts per image; retries run with one copy at a time.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub retries: u32,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,

    /// Node copies (manifests, configs, layers, range requests) in flight at once, for the whole run: the next
    /// image takes the slots the last one no longer needs.
    #[arg(long, default_value_t = 6, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub oci_concurrency: u32,

    #[command(flatten)]
    pub referrers: ReferrerArgs,

    #[command(flatten)]
    pub trust: TrustArgs,

    #[command(flatten)]
    pub upload: UploadArgs,

    #[command(flatten)]
    pub registry_opts: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The sync file: skopeo sync's YAML (registry → images / images-by-tag-regex / images-by-semver,
    /// credentials, tls-verify, cert-dir), plus ferry's optional `platform`, `referrers` and `rename`.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,

    /// A registry prefix (host[:port][/path]), oci:DIR (or a directory path), or oci-archive:FILE.
    pub destination: String,

    /// Keep each image's whole source name under the destination (skopeo sync's --scoped).
    #[arg(long, conflicts_with = "zarf")]
    pub scoped: bool,

    /// Name images as Zarf pushes them (`<repository>:<tag>-zarf-<crc>` and `<repository>:<tag>`).
    #[arg(long)]
    pub zarf: bool,

    /// Resolve everything and report the bytes that would move (shared blobs once), the bytes the
    /// destination has, and for a layout or archive whether the disk has room; move nothing.
    #[arg(long)]
    pub plan: bool,

    /// Go on past an image that fails; the run still fails at the end and the report names each failure.
    #[arg(long)]
    pub keep_going: bool,

    /// Write every source reference, its digest, where it went and every digest of its graph to FILE.
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,

    /// Copy only this platform (os/arch[/variant]); by default every platform of an index.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<PlatformSpec>,

    /// Attempts per image; retries run with one copy at a time.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub retries: u32,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub transfer: TransferArgs,

    #[command(flatten)]
    pub upload: UploadArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// Blobs up to this size are uploaded in one request (and buffered for it); larger ones stream
    /// while they are read, resuming where the registry stands after a broken connection.
    #[arg(long, default_value = "4M", value_name = "SIZE", value_parser = crate::cache::parse_size)]
    pub chunk_threshold: u64,

    /// Send a streamed upload in requests of this size (default: one per blob). Each costs a round trip.
    #[arg(long, value_name = "SIZE", value_parser = crate::cache::parse_size)]
    pub chunk_size: Option<u64>,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Source reference (registry).
    pub source: String,

    /// Destination reference. With --all-tags: a repository.
    pub destination: String,

    /// Copy every tag of the source repository.
    #[arg(long)]
    pub all_tags: bool,

    /// Select one architecture (linux/<ARCH>) instead of copying the whole index.
    #[arg(short = 'a', long = "architecture", value_name = "ARCH")]
    pub architecture: Option<String>,

    /// Select one platform (os/arch[/variant]) instead of copying the whole index.
    #[arg(
        long,
        value_name = "OS/ARCH[/VARIANT]",
        conflicts_with = "architecture"
    )]
    pub platform: Option<PlatformSpec>,

    /// Attempts per image; retries run with one copy at a time.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub retries: u32,

    #[command(flatten)]
    pub copy: ImageCopyArgs,

    #[command(flatten)]
    pub upload: UploadArgs,

    /// Transport for both registries (`--cert-dir`: unless a side has its own below).
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Certificates for the source registry (`*.crt`, `NAME.cert` + `NAME.key`), instead of its certs.d
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,

    /// Certificates for the destination registry, instead of its certs.d directory.
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,

    /// Source registry username.
    #[arg(long, requires = "src_password")]
    pub src_username: Option<String>,

    /// Source registry password.
    #[arg(long, env = "FERRY_SRC_PASSWORD", hide_env_values = true)]
    pub src_password: Option<String>,

    /// Destination registry username.
    #[arg(long, requires = "dest_password")]
    pub dest_username: Option<String>,

    /// Destination registry password.
    #[arg(long, env = "FERRY_DEST_PASSWORD", hide_env_values = true)]
    pub dest_password: Option<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Image references (`nginx:1.25`, `ghcr.io/org/app@sha256:…`, `oci://host/chart:1.0`), or local
    /// sources: `docker-daemon:IMAGE[:TAG]`, `docker-archive:FILE.tar[:REF]`, `oci-archive:FILE.tar[.zst][:REF]`.
    pub references: Vec<String>,

    /// Read references from FILE: one per line (`#` comments and blank lines ignored), or, when FILE is a
    /// zarf.yaml (v1alpha1 and/or v1beta1), the images `zarf package create` would take: those of the
    /// components for the architecture (-a, else metadata.architecture) and --flavor, `imageArchives`
    /// images from their archives, v1beta1 `source: daemon` images from the Docker Engine.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// With -f zarf.yaml: the flavor to build for (components with another `only.flavor` are left out).
    #[arg(long, value_name = "FLAVOR", default_value = "")]
    pub flavor: String,

    /// The OCI layout directory to write (created if missing, added to if it exists), or
    /// `oci-archive:FILE.tar[.zst]` to write one archive file.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// Complete a delta (`ferry export --since`) from BASE: blobs the sources lack are read from this
    /// earlier layout or oci-archive, hashed as they are read. Every image is checked complete before any is
    /// written.
    #[arg(long, value_name = "BASE")]
    pub base: Option<PathBuf>,

    /// Architecture to select from multi-platform images (linux/<ARCH>). Default: this machine's.
    #[arg(short = 'a', long = "architecture", value_name = "ARCH")]
    pub architecture: Option<String>,

    /// Platform to select (os/arch[/variant]), even from an index pinned by digest.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", conflicts_with_all = ["architecture", "all_platforms"])]
    pub platform: Option<PlatformSpec>,

    /// Keep every platform of multi-platform images.
    #[arg(long)]
    pub all_platforms: bool,

    /// When a reference cannot be had from its registry (for any reason but rate limiting), export it
    /// from the local Docker Engine instead (Zarf's behaviour).
    #[arg(long)]
    pub daemon_fallback: bool,

    /// Fetch references starting with SRC from DST instead (first match wins; the recorded name is unchanged).
    #[arg(long = "registry-override", value_name = "SRC=DST")]
    pub registry_overrides: Vec<String>,

    #[command(flatten)]
    pub copy: ImageCopyArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// What every image copy takes: how its summary prints, what comes along, the signature policy, how it
/// moves.
#[derive(Args, Debug)]
pub struct ImageCopyArgs {
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub referrers: ReferrerArgs,

    #[command(flatten)]
    pub trust: TrustArgs,

    #[command(flatten)]
    pub transfer: TransferArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The image: REF, oci:DIR[:NAME], oci-archive:FILE[:REF], docker-archive:FILE[:REF].
    pub image: String,

    #[command(flatten)]
    pub trust: TrustArgs,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug, Clone)]
pub struct TrustArgs {
    /// Refuse any image without a cosign signature by this public key (PEM, as `cosign generate-key-pair`
    /// writes it: ECDSA P-256/P-384, RSA, Ed25519), checked before anything of it is written.
    #[arg(long, value_name = "KEY.pub", conflicts_with = "verify_policy")]
    pub verify_key: Option<std::path::PathBuf>,

    /// Decide by a signature policy file (see the README: scopes to keys or keyless identities, reject,
    /// insecureAcceptAnything).
    #[arg(long, value_name = "FILE")]
    pub verify_policy: Option<std::path::PathBuf>,

    /// Accept keyless signatures (Sigstore bundles with a Fulcio certificate) verified offline against this
    /// trusted root (`trusted_root.json`: Fulcio CAs, Rekor and CT log keys). Needs --certificate-identity[-regexp]
    /// and --certificate-oidc-issuer[-regexp].
    #[arg(long, value_name = "FILE", conflicts_with = "verify_policy")]
    pub trusted_root: Option<std::path::PathBuf>,

    /// With --trusted-root: the signing certificate's identity (e-mail, URI or user name SAN), exactly.
    #[arg(
        long,
        value_name = "ID",
        requires = "trusted_root",
        conflicts_with = "certificate_identity_regexp"
    )]
    pub certificate_identity: Option<String>,

    /// With --trusted-root: the identity by RE2 regexp (unanchored, as cosign's: use ^…$).
    #[arg(long, value_name = "RE", requires = "trusted_root")]
    pub certificate_identity_regexp: Option<String>,

    /// With --trusted-root: the OIDC issuer Fulcio recorded in the certificate, exactly.
    #[arg(
        long,
        value_name = "URL",
        requires = "trusted_root",
        conflicts_with = "certificate_oidc_issuer_regexp"
    )]
    pub certificate_oidc_issuer: Option<String>,

    /// With --trusted-root: the OIDC issuer by RE2 regexp.
    #[arg(long, value_name = "RE", requires = "trusted_root")]
    pub certificate_oidc_issuer_regexp: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ReferrerArgs {
    /// Also copy the artifacts that refer to each image (signatures, attestations, SBOMs), recursively:
    /// the referrers API, its tag-schema fallback, and cosign `sha256-<hex>.sig|.att|.sbom` tags.
    #[arg(long)]
    pub referrers: bool,

    /// With --referrers: only artifacts of this artifactType (repeatable).
    #[arg(long = "referrers-type", value_name = "TYPE", requires = "referrers")]
    pub referrers_types: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// Node copies (manifests, configs, layers, range requests) in flight at once, for the whole run: the next
    /// image takes the slots the last one no longer needs.
    #[arg(long, default_value_t = 6, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub oci_concurrency: u32,

    /// Blob cache directory (a Zarf cache such as ~/.zarf-cache works). Default: $FERRY_CACHE, else
    /// $XDG_CACHE_HOME/ferry/v1, else ~/.cache/ferry/v1.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache: Option<PathBuf>,

    /// Do not read or write the blob cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Blobs at least this large are downloaded as parallel range requests (into the cache), using
    /// --oci-concurrency slots no other node needs at that moment.
    #[arg(long, default_value = "64M", value_name = "SIZE", value_parser = crate::cache::parse_size)]
    pub range_threshold: u64,

    /// Size of each range request of such a download.
    #[arg(long, default_value = "16M", value_name = "SIZE", value_parser = crate::cache::parse_size)]
    pub range_size: u64,
}

#[derive(Args, Debug)]
pub struct RegistryArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

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

    /// Mirrors, insecure and blocked registries from this registries.conf (containers' v2 format:
    /// [[registry]] location/prefix/insecure/blocked, [[registry.mirror]] location/insecure). Default:
    /// $FERRY_REGISTRIES_CONF, else ~/.config/ferry/registries.conf when it exists.
    #[arg(long, value_name = "FILE", env = "FERRY_REGISTRIES_CONF")]
    pub registries_conf: Option<PathBuf>,

    /// At most this many requests per second to each registry host (halved when a host says 429).
    #[arg(long, value_name = "N")]
    pub max_requests_per_second: Option<f64>,

    /// At most this many requests awaiting an answer from each registry host at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_requests_per_host: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum PackageCommand {
    /// Show a package's name, version, architecture, components, images (digests, sizes) and integrity.
    #[command(after_help = "Examples:
  ferry package inspect zarf-package-demo-amd64-1.0.0.tar.zst
  ferry package inspect build/demo --json
  ferry package inspect oci://registry.local/packages/demo:1.0.0 -a arm64")]
    Inspect(PackageArgs),

    /// Check checksums.txt and metadata.aggregateChecksum; report changed, missing and unexpected files.
    #[command(after_help = "Examples:
  ferry package verify zarf-package-demo-amd64-1.0.0.tar.zst
  ferry package verify build/demo --partial      # pulled with --components: absent files are fine
  ferry package verify oci://registry.local/packages/demo:1.0.0")]
    Verify(PackageVerifyArgs),

    /// Publish a package to a registry in Zarf's OCI format (tag <version>[-<flavor>], one index entry per architecture).
    #[command(after_help = "Examples:
  ferry package publish zarf-package-demo-amd64-1.0.0.tar.zst oci://registry.local/packages
  ferry package publish build/demo oci://127.0.0.1:5000 --tag latest")]
    Publish(PackagePublishArgs),

    /// Pull a package from a registry, all of it or some components, through the shared blob cache.
    #[command(after_help = "Examples:
  ferry package pull oci://registry.local/packages/demo:1.0.0 -o demo
  ferry package pull oci://registry.local/packages/demo:1.0.0 -o demo.tar.zst -a arm64
  ferry package pull oci://registry.local/packages/demo:1.0.0 -o web --components web --json")]
    Pull(PackagePullArgs),

    /// Sign a package directory as `zarf package sign --signing-key` does: zarf.yaml's build data updated
    /// (signed, provenanceFiles, versionRequirements) and zarf.bundle.sig written (a Sigstore bundle, no
    /// transparency log); a legacy zarf.yaml.sig is removed.
    #[command(after_help = "Examples:
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out zarf.key
  openssl pkey -in zarf.key -pubout -out zarf.pub
  ferry package sign ./demo --signing-key zarf.key
  ferry package verify ./demo --key zarf.pub")]
    Sign(PackageSignArgs),
}

#[derive(Args, Debug)]
pub struct PackageSignArgs {
    /// A package directory (unpack a .tar.zst first: `tar -xf PKG.tar.zst -C DIR`).
    pub package: PathBuf,

    /// The private key: unencrypted PEM, PKCS#8 (`openssl genpkey`) or SEC1 `EC PRIVATE KEY`; ECDSA
    /// P-256/P-384, RSA or Ed25519.
    #[arg(long, value_name = "KEY")]
    pub signing_key: PathBuf,

    /// Replace an existing zarf.bundle.sig.
    #[arg(long)]
    pub overwrite: bool,
}

/// A package to look at, wherever it is.
#[derive(Args, Debug)]
pub struct PackageArgs {
    /// A package directory, .tar or .tar.zst, or oci://REGISTRY/REPOSITORY:TAG.
    pub package: String,

    /// For a package in a registry: the architecture to use (default: the only one, else this machine's).
    #[arg(short = 'a', long = "architecture", value_name = "ARCH")]
    pub architecture: Option<String>,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct PackageVerifyArgs {
    #[command(flatten)]
    pub package: PackageArgs,

    /// Also check the package's signature (zarf.bundle.sig, else zarf.yaml.sig) with this public key.
    #[arg(long, value_name = "KEY.pub")]
    pub key: Option<PathBuf>,

    /// Files listed in checksums.txt may be absent (a package pulled with --components).
    #[arg(long)]
    pub partial: bool,
}

#[derive(Args, Debug)]
pub struct PackagePublishArgs {
    /// A package directory, .tar or .tar.zst.
    pub package: PathBuf,

    /// oci://REGISTRY[/NAMESPACE]; the repository is the package name.
    pub destination: String,

    /// Tag to publish under (default: <version>[-<flavor>] from zarf.yaml).
    #[arg(long)]
    pub tag: Option<String>,

    /// Publish without checking the package against its checksums.txt first (a warning says so).
    #[arg(long)]
    pub skip_verify: bool,

    /// Refuse the package unless this public key signed its zarf.yaml (zarf.bundle.sig, else zarf.yaml.sig).
    #[arg(long, value_name = "KEY.pub")]
    pub key: Option<PathBuf>,

    /// Attempts; retries run with one copy at a time.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub retries: u32,

    /// Layers in flight at once.
    #[arg(long, default_value_t = 6, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub oci_concurrency: u32,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub upload: UploadArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct PackagePullArgs {
    /// oci://REGISTRY/REPOSITORY:TAG (or @sha256:…).
    pub reference: String,

    /// Where to write the package: a new directory, FILE.tar.zst / FILE.tar, or an existing directory, which
    /// receives zarf-package-<name>-<arch>-<version>[-<flavor>].tar.zst as Zarf names it.
    #[arg(short, long, value_name = "DIR|FILE.tar.zst")]
    pub output: PathBuf,

    /// Only these components (comma-separated or repeated) and the required ones: a whole package of its
    /// own (zarf.yaml, images/index.json, checksums.txt rewritten; a signature that no longer matches dropped).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub components: Vec<String>,

    /// The architecture to pull (default: the only one, else this machine's).
    #[arg(short = 'a', long = "architecture", value_name = "ARCH")]
    pub architecture: Option<String>,

    /// Refuse the package unless this public key signed its zarf.yaml (zarf.bundle.sig, else zarf.yaml.sig).
    #[arg(long, value_name = "KEY.pub")]
    pub key: Option<PathBuf>,

    /// Print the summary as JSON (bytes fetched and served from the cache).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub transfer: TransferArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// An OCI layout (a Zarf images/ directory), a Zarf package (directory, .tar, .tar.zst, .tar.gz) or an
    /// oci-archive:FILE.
    #[arg(
        value_name = "SOURCE",
        required_unless_present = "cache",
        conflicts_with = "cache"
    )]
    pub source: Option<String>,

    /// Address to listen on. Anything beyond loopback must be asked for (e.g. 0.0.0.0:5000).
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,

    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require Basic authentication against this htpasswd file (bcrypt entries, `htpasswd -B`).
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,

    /// Refuse pushes (the default).
    #[arg(long, conflicts_with = "writable")]
    pub read_only: bool,

    /// Accept pushes (docker push, skopeo, ferry push) into the layout, verified before they are recorded.
    #[arg(long)]
    pub writable: bool,

    /// Also serve every tagged image as <tag>-zarf-<crc32>, the name Zarf's push gives it.
    #[arg(long)]
    pub zarf_names: bool,

    /// Serve the blob cache (content by digest; it keeps no names). DIR defaults to $FERRY_CACHE, else
    /// $XDG_CACHE_HOME/ferry/v1, else ~/.cache/ferry/v1.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub cache: Option<Option<PathBuf>>,

    /// The largest blob one push may upload (e.g. 500M, 20G).
    #[arg(long, default_value = "64G", value_name = "SIZE", value_parser = crate::cache::parse_size)]
    pub max_upload_size: u64,

    /// Where a compressed package or archive is decompressed to (default: beside it, else the temp dir).
    #[arg(long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
}
