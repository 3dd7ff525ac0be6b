//! `--key` for Zarf packages: their `zarf.yaml` signature checked by Zarf's rules (ferry_trust::zarf).

use std::path::Path;

use anyhow::Context;
use ferry_trust::blob::MAX_SIGNATURE_BYTES;
use ferry_trust::zarf::{BUNDLE, LEGACY, PackageFiles, PackageSigned, verify_package};
use ferry_trust::{PrivateKey, PublicKey};
use ferry_zarf::ZARF_YAML;
use ferry_zarf::definition::MAX_ZARF_YAML;
use ferry_zarf::local::Extract;

use crate::cli::{PackageSignArgs, RegistryArgs};
use crate::package::{open_local, remote_reference, resolve_remote};

/// `zarf.yaml` and its signature files, as the package (a path or `oci://…`) has them.
async fn signature_files(
    package: &str,
    arch: Option<&str>,
    registry: &RegistryArgs,
) -> anyhow::Result<[Option<Vec<u8>>; 3]> {
    if let Some(reference) = remote_reference(package)? {
        let remote = resolve_remote(reference, arch, registry).await?;
        return Ok([
            remote.fetch_small(ZARF_YAML, MAX_ZARF_YAML).await?,
            remote.fetch_small(BUNDLE, MAX_SIGNATURE_BYTES).await?,
            remote.fetch_small(LEGACY, MAX_SIGNATURE_BYTES).await?,
        ]);
    }
    let pkg = open_local(Path::new(package), Extract::Nothing, false).await?;
    Ok([
        pkg.read(ZARF_YAML, MAX_ZARF_YAML)?,
        pkg.read(BUNDLE, MAX_SIGNATURE_BYTES)?,
        pkg.read(LEGACY, MAX_SIGNATURE_BYTES)?,
    ])
}

/// Refuse `package` unless `key` signed its `zarf.yaml`.
pub async fn check(
    package: &str,
    arch: Option<&str>,
    registry: &RegistryArgs,
    key: &Path,
) -> anyhow::Result<PackageSigned> {
    let key =
        PublicKey::from_file(key).with_context(|| format!("reading --key {}", key.display()))?;
    let [yaml, bundle, legacy] = signature_files(package, arch, registry).await?;
    let yaml = yaml.with_context(|| format!("{package} has no {ZARF_YAML}: not a Zarf package"))?;
    let files = PackageFiles {
        zarf_yaml: &yaml,
        bundle: bundle.as_deref(),
        legacy: legacy.as_deref(),
    };
    let keys = [key];
    let trust = ferry_trust::Trust {
        keys: &keys,
        keyless: None,
    };
    let signed = verify_package(package, &files, trust)?;
    if signed.file == LEGACY {
        tracing::warn!("{package}: only the legacy {LEGACY} signature (Zarf prefers {BUNDLE})");
    }
    Ok(signed)
}

/// `ferry package sign`.
pub async fn sign(args: PackageSignArgs) -> anyhow::Result<()> {
    let key = PrivateKey::from_file(&args.signing_key)
        .with_context(|| format!("reading --signing-key {}", args.signing_key.display()))?;
    let signed = tokio::task::spawn_blocking(move || {
        ferry_zarf::sign::sign_directory(&args.package, &key, args.overwrite)
    })
    .await??;
    println!(
        "{}: {BUNDLE} written, signed by {}",
        signed.package, signed.key
    );
    if signed.removed_legacy {
        println!("{}: the legacy {LEGACY} was removed", signed.package);
    }
    Ok(())
}
