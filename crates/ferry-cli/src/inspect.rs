//! `ferry inspect` and `ferry digest`: what a reference names, in a registry or in an OCI layout
//! (`oci:DIR[:NAME]`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use ferry_oci::{Descriptor, Digest, Manifest, ManifestKind, PlatformSpec, media_type};
use ferry_registry::Repository;
use ferry_store::{OciLayout, ReadStore, Store, StoreError};
use serde::Serialize;

use ferry_target::Location;

use crate::cli::{DigestArgs, InspectArgs, RegistryArgs};
use crate::output::{human, print_json, short_media_type};
use crate::registry_opts;

/// Docker's image config type (the OCI one is in `ferry_oci::media_type`).
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The largest config `--config` prints; configs are small, a bigger blob is not one.
const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// A target opened for reading: where its content lives and the manifest it names.
struct Opened {
    store: Arc<dyn ReadStore>,
    label: String,
    /// The layout entry's name, for layout targets.
    name: Option<String>,
    desc: Descriptor,
    bytes: Bytes,
    manifest: Manifest,
}

async fn open(target: &Location, registry: &RegistryArgs) -> anyhow::Result<Opened> {
    match target {
        Location::Registry(reference) => {
            let client = registry_opts::client(registry, None)?;
            let repo = Repository::new(client, &reference.registry, &reference.repository);
            let (desc, bytes) = repo.resolve(&reference.target()).await?;
            let manifest = parse(&desc, &bytes, &repo.describe())?;
            Ok(Opened {
                store: Arc::new(repo),
                label: reference.to_string(),
                name: None,
                desc,
                bytes,
                manifest,
            })
        }
        Location::Archive(spec) => {
            let source =
                ferry_archive::open_source(spec, &ferry_archive::SourceOptions::default()).await?;
            let [image] = source.images.as_slice() else {
                let names: Vec<String> = source.images.iter().map(|i| i.label()).collect();
                bail!(
                    "it holds {} images; name one with FILE:REF ({})",
                    names.len(),
                    names.join(", ")
                );
            };
            let bytes = source.store.fetch_manifest(&image.desc).await?;
            let manifest = parse(&image.desc, &bytes, &source.store.describe())?;
            Ok(Opened {
                label: target.to_string(),
                name: image.name.clone(),
                desc: image.desc.clone(),
                store: source.store,
                bytes,
                manifest,
            })
        }
        Location::Layout { dir, name } => {
            let layout = open_layout(dir)?;
            let (desc, entry_name) = find_entry(&layout, name.as_deref())?;
            let bytes = layout.fetch_manifest(&desc).await?;
            let manifest = parse(&desc, &bytes, &layout.describe())?;
            Ok(Opened {
                label: target.to_string(),
                store: Arc::new(layout),
                name: entry_name,
                desc,
                bytes,
                manifest,
            })
        }
    }
}

fn parse(desc: &Descriptor, bytes: &[u8], store: &str) -> anyhow::Result<Manifest> {
    Manifest::parse(&desc.media_type, bytes)
        .with_context(|| format!("manifest {} in {store}", desc.digest))
}

pub fn open_layout(dir: &Path) -> anyhow::Result<OciLayout> {
    Ok(ferry_target::open_layout(dir)?)
}

/// The entry `name` names (by `ref.name`, `base.name` or normalized name — both Zarf eras — or by digest,
/// which may also be a nested manifest), or the only image when no name is given. The descriptor comes
/// back without the layout's naming annotations.
fn find_entry(
    layout: &OciLayout,
    name: Option<&str>,
) -> anyhow::Result<(Descriptor, Option<String>)> {
    let dir = layout.root().display().to_string();
    let entries = layout.entries()?;
    let names = || {
        let mut all: Vec<String> = entries.iter().filter_map(|e| e.image_name()).collect();
        all.dedup();
        all.join(", ")
    };
    let digest = name.and_then(|n| n.parse::<Digest>().ok());
    let found: Vec<Descriptor> = match (name, &digest) {
        (None, _) => entries.clone(),
        (Some(_), Some(d)) => entries.iter().filter(|e| e.digest == *d).cloned().collect(),
        (Some(n), None) => layout.find(n)?,
    };
    let mut distinct: Vec<&Descriptor> = Vec::new();
    for f in &found {
        if !distinct.iter().any(|d| d.digest == f.digest) {
            distinct.push(f);
        }
    }
    match (distinct.as_slice(), name) {
        ([one], _) => {
            let mut desc = (*one).clone();
            desc.annotations.clear();
            Ok((desc, one.image_name()))
        }
        ([], Some(n)) => match digest {
            // Not an entry: a manifest below one (a platform of an index), found by its blob.
            Some(d) => {
                let path = layout.blob_path(&d);
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("{n} is not in {dir}: no entry and no blob"))?;
                let manifest = Manifest::parse("", &bytes)
                    .with_context(|| format!("blob {n} in {dir} is not a manifest"))?;
                Ok((
                    Descriptor::new(manifest.media_type, d, bytes.len() as u64),
                    None,
                ))
            }
            None => bail!("no image named {n} in {dir}; it has: {}", names()),
        },
        ([], None) => bail!("{dir} has no images"),
        (_, _) => bail!(
            "{} images in {dir} match; name one (oci:{dir}:NAME): {}",
            distinct.len(),
            names()
        ),
    }
}

/// For an index and a platform: the first child for it, fetched. Anything else is returned unchanged.
async fn select_platform(opened: Opened, platform: Option<&str>) -> anyhow::Result<Opened> {
    let Some(p) = platform else {
        return Ok(opened);
    };
    let spec: PlatformSpec = p.parse().map_err(anyhow::Error::msg)?;
    if opened.manifest.kind != ManifestKind::Index {
        return Ok(opened);
    }
    let child = opened
        .manifest
        .manifests
        .iter()
        .find(|c| c.platform.as_ref().is_some_and(|cp| spec.matches(cp)))
        .with_context(|| {
            format!(
                "{} has no manifest for {spec}; it has: {}",
                opened.label,
                platforms_of(&opened.manifest).join(", ")
            )
        })?;
    let desc = Descriptor::new(child.media_type.clone(), child.digest.clone(), child.size);
    let bytes = opened.store.fetch_manifest(&desc).await?;
    let manifest = parse(&desc, &bytes, &opened.store.describe())?;
    Ok(Opened {
        label: format!("{} ({spec})", opened.label),
        desc: Descriptor {
            platform: child.platform.clone(),
            ..desc
        },
        bytes,
        manifest,
        ..opened
    })
}

fn platforms_of(index: &Manifest) -> Vec<String> {
    index
        .manifests
        .iter()
        .map(|c| c.platform.as_ref().map_or("-".into(), |p| p.to_string()))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspection {
    reference: String,
    name: Option<String>,
    media_type: String,
    digest: String,
    size: u64,
    artifact_type: Option<String>,
    kind: &'static str,
    platform: Option<String>,
    manifests: Vec<ChildInfo>,
    config: Option<Descriptor>,
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
    annotations: BTreeMap<String, String>,
    total_size: u64,
    complete: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChildInfo {
    media_type: String,
    digest: String,
    size: u64,
    platform: Option<String>,
    artifact_type: Option<String>,
    annotations: BTreeMap<String, String>,
    total_size: Option<u64>,
}

pub async fn run_inspect(args: InspectArgs) -> anyhow::Result<()> {
    let target = Location::parse(&args.reference)?;
    let opened = open(&target, &args.registry)
        .await
        .with_context(|| format!("inspecting {}", args.reference))?;
    let opened = select_platform(opened, args.platform.as_deref()).await?;
    if args.raw {
        return write_stdout(&opened.bytes);
    }
    if args.config {
        let Some(config) = &opened.manifest.config else {
            if opened.manifest.kind == ManifestKind::Index {
                bail!(
                    "{} is an index, which has no config; choose a manifest with --platform ({})",
                    opened.label,
                    platforms_of(&opened.manifest).join(", ")
                );
            }
            bail!("{} has no config", opened.label);
        };
        let bytes = ferry_store::file::read_small(opened.store.as_ref(), config, MAX_CONFIG_BYTES)
            .await
            .with_context(|| format!("reading the config of {}", opened.label))?;
        return write_stdout(&bytes);
    }
    let info = describe(&opened).await?;
    if args.json {
        return print_json(&info);
    }
    print_inspection(&info);
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

async fn describe(o: &Opened) -> anyhow::Result<Inspection> {
    let m = &o.manifest;
    let mut cache: HashMap<Digest, Manifest> = HashMap::new();
    cache.insert(o.desc.digest.clone(), m.clone());
    let mut manifests = Vec::new();
    for child in &m.manifests {
        let (total, complete) = total_size(o.store.as_ref(), child, &mut cache).await?;
        manifests.push(ChildInfo {
            media_type: child.media_type.clone(),
            digest: child.digest.to_string(),
            size: child.size,
            platform: child.platform.as_ref().map(|p| p.to_string()),
            artifact_type: child.artifact_type.clone(),
            annotations: child.annotations.clone(),
            total_size: complete.then_some(total),
        });
    }
    let (total, complete) = total_size(o.store.as_ref(), &o.desc, &mut cache).await?;
    let platform = match (&o.desc.platform, &m.config) {
        (Some(p), _) => Some(p.to_string()),
        (None, Some(config)) => config_platform(o.store.as_ref(), config).await,
        (None, None) => None,
    };
    Ok(Inspection {
        reference: o.label.clone(),
        name: o.name.clone(),
        media_type: o.desc.media_type.clone(),
        digest: o.desc.digest.to_string(),
        size: o.desc.size,
        artifact_type: m
            .artifact_type
            .clone()
            .or_else(|| o.desc.artifact_type.clone()),
        kind: match m.kind {
            ManifestKind::Index => "index",
            ManifestKind::Image => "manifest",
        },
        platform,
        manifests,
        config: m.config.clone(),
        layers: m.layers.clone(),
        subject: m.subject.clone(),
        annotations: m.annotations.clone(),
        total_size: total,
        complete,
    })
}

/// Bytes of every distinct node under `root` that a pull moves (manifests, configs, distributable layers;
/// not the subject, which is another image), and whether every manifest below could be read.
async fn total_size(
    store: &dyn ReadStore,
    root: &Descriptor,
    cache: &mut HashMap<Digest, Manifest>,
) -> anyhow::Result<(u64, bool)> {
    let mut seen = HashSet::new();
    let mut stack = vec![root.clone()];
    let (mut total, mut complete) = (0u64, true);
    while let Some(desc) = stack.pop() {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        total += desc.size;
        if !media_type::is_manifest_like(&desc.media_type) {
            continue;
        }
        if !cache.contains_key(&desc.digest) {
            let plain = Descriptor::new(desc.media_type.clone(), desc.digest.clone(), desc.size);
            match store.fetch_manifest(&plain).await {
                Ok(bytes) => {
                    cache.insert(
                        desc.digest.clone(),
                        parse(&plain, &bytes, &store.describe())?,
                    );
                }
                // A layout may hold one platform of an index (Docker exports do).
                Err(StoreError::NotFound { .. }) => {
                    complete = false;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let m = &cache[&desc.digest];
        stack.extend(m.manifests.iter().cloned());
        stack.extend(m.config.iter().cloned());
        stack.extend(
            m.layers
                .iter()
                .filter(|l| !media_type::is_non_distributable(&l.media_type))
                .cloned(),
        );
    }
    Ok((total, complete))
}

/// `os/arch[/variant]` from an image config; None for artifacts or when it cannot be read.
async fn config_platform(store: &dyn ReadStore, config: &Descriptor) -> Option<String> {
    if config.media_type != media_type::OCI_CONFIG && config.media_type != DOCKER_CONFIG {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct ImageConfig {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
        variant: Option<String>,
    }
    let bytes =
        match ferry_store::file::read_small(store, config, ferry_oci::MAX_MANIFEST_BYTES).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!("config {}: {e:#}", config.digest);
                return None;
            }
        };
    let c: ImageConfig = serde_json::from_slice(&bytes).ok()?;
    if c.os.is_empty() || c.architecture.is_empty() {
        return None;
    }
    Some(match c.variant {
        Some(v) => format!("{}/{}/{v}", c.os, c.architecture),
        None => format!("{}/{}", c.os, c.architecture),
    })
}

fn print_inspection(i: &Inspection) {
    let row = |k: &str, v: &str| println!("{k:<14} {v}");
    row("Reference", &i.reference);
    if let Some(n) = &i.name {
        row("Name", n);
    }
    row("Media type", &i.media_type);
    row("Digest", &i.digest);
    row("Size", &i.size.to_string());
    if let Some(a) = &i.artifact_type {
        row("Artifact type", a);
    }
    if let Some(p) = &i.platform {
        row("Platform", p);
    }
    let total = format!("{} ({})", i.total_size, human(i.total_size));
    if i.complete {
        row("Total size", &total);
    } else {
        row(
            "Total size",
            &format!("{total}, of what is present: some manifests are missing"),
        );
    }
    if !i.manifests.is_empty() {
        println!("\nManifests:");
        println!(
            "  {:<16} {:<71} {:<16} {:>10}",
            "PLATFORM", "DIGEST", "TYPE", "TOTAL"
        );
        for c in &i.manifests {
            println!(
                "  {:<16} {:<71} {:<16} {:>10}",
                c.platform.as_deref().unwrap_or("-"),
                c.digest,
                short_media_type(&c.media_type),
                c.total_size.map_or("missing".into(), human)
            );
        }
    }
    if let Some(c) = &i.config {
        println!(
            "\nConfig:\n  {}  {:>10}  {}",
            c.digest,
            human(c.size),
            c.media_type
        );
    }
    if !i.layers.is_empty() {
        println!("\nLayers:");
        for l in &i.layers {
            println!("  {}  {:>10}  {}", l.digest, human(l.size), l.media_type);
        }
    }
    if let Some(s) = &i.subject {
        println!("\nSubject:\n  {}  {}", s.digest, s.media_type);
    }
    if !i.annotations.is_empty() {
        println!("\nAnnotations:");
        for (k, v) in &i.annotations {
            println!("  {k}: {v}");
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DigestOutput {
    reference: String,
    digest: String,
    media_type: String,
    size: u64,
}

pub async fn run_digest(args: DigestArgs) -> anyhow::Result<()> {
    let target = Location::parse(&args.reference)?;
    let desc = match (&target, &args.platform) {
        // The common case costs one HEAD request.
        (Location::Registry(reference), None) => {
            let client = registry_opts::client(&args.registry, None)?;
            let repo = Repository::new(client, &reference.registry, &reference.repository);
            repo.head_manifest(&reference.target())
                .await
                .with_context(|| format!("resolving {reference}"))?
        }
        _ => {
            let opened = open(&target, &args.registry)
                .await
                .with_context(|| format!("resolving {}", args.reference))?;
            select_platform(opened, args.platform.as_deref())
                .await?
                .desc
        }
    };
    if args.json {
        return print_json(&DigestOutput {
            reference: args.reference,
            digest: desc.digest.to_string(),
            media_type: desc.media_type,
            size: desc.size,
        });
    }
    println!("{}", desc.digest);
    Ok(())
}
