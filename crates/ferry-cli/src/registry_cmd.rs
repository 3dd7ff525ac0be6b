//! The small registry commands: `ls` (tags), `catalog` (repositories), `tag` and `delete`.

use anyhow::{Context, bail};
use ferry_oci::Reference;
use ferry_registry::Repository;
use serde_json::json;

use crate::cli::{CatalogArgs, DeleteArgs, LsArgs, RegistryArgs, TagArgs};
use crate::output::print_json;
use crate::registry_opts;

fn repository(reference: &Reference, registry: &RegistryArgs) -> anyhow::Result<Repository> {
    let client = registry_opts::client(registry, None)?;
    Ok(Repository::new(
        client,
        &reference.registry,
        &reference.repository,
    ))
}

/// One item a line, or `{"<key>": name, "<list>": items}` with `--json`.
fn print_list(json: bool, key: (&str, &str), list: (&str, Vec<String>)) -> anyhow::Result<()> {
    if json {
        return print_json(&json!({ key.0: key.1, list.0: list.1 }));
    }
    list.1.iter().for_each(|item| println!("{item}"));
    Ok(())
}

pub async fn run_ls(args: LsArgs) -> anyhow::Result<()> {
    let reference: Reference = args.repository.parse()?;
    let last = args.repository.rsplit('/').next().unwrap_or_default();
    if last.contains(':') || args.repository.contains('@') {
        let name = reference.name();
        bail!("ls lists a repository's tags: give {name} without a tag or digest");
    }
    let repo = repository(&reference, &args.list.registry)?;
    let tags = repo
        .list_tags_paged(args.list.page_size.map(|n| n as usize))
        .await?;
    print_list(
        args.list.json,
        ("repository", &reference.name()),
        ("tags", tags),
    )
}

pub async fn run_catalog(args: CatalogArgs) -> anyhow::Result<()> {
    let host = Reference::parse_host(&args.host)?;
    let client = registry_opts::client(&args.list.registry, None)?;
    let repositories = client
        .catalog(&host, args.list.page_size.map(|n| n as usize))
        .await?;
    print_list(
        args.list.json,
        ("registry", &host),
        ("repositories", repositories),
    )
}

pub async fn run_tag(args: TagArgs, quiet: bool) -> anyhow::Result<()> {
    let reference: Reference = args.reference.parse()?;
    // Every tag is checked before anything changes.
    let named = args
        .tags
        .iter()
        .map(|t| {
            reference.with_tag(t).with_context(
                || "`ferry tag` tags within a repository; use `ferry copy` for another",
            )
        })
        .collect::<anyhow::Result<Vec<Reference>>>()?;
    let repo = repository(&reference, &args.registry)?;
    let (desc, bytes) = repo
        .resolve(&reference.target())
        .await
        .with_context(|| format!("resolving {reference}"))?;
    for n in &named {
        let tag = n.tag.as_deref().unwrap_or_default();
        repo.tag(&desc, bytes.clone(), tag)
            .await
            .with_context(|| format!("tagging {} as {n}", desc.digest))?;
        if !quiet && !args.json {
            println!("{n} → {}", desc.digest);
        }
    }
    if args.json {
        let tagged: Vec<String> = named.iter().map(Reference::to_string).collect();
        let (source, digest) = (reference.to_string(), desc.digest.to_string());
        return print_json(&json!({
            "source": source, "digest": digest, "mediaType": desc.media_type, "tagged": tagged
        }));
    }
    Ok(())
}

pub async fn run_delete(args: DeleteArgs, quiet: bool) -> anyhow::Result<()> {
    let reference: Reference = args.reference.parse()?;
    let repo = repository(&reference, &args.registry)?;
    let digest = match &reference.digest {
        Some(d) => d.clone(),
        None => {
            let desc = repo
                .head_manifest(&reference.target())
                .await
                .with_context(|| format!("resolving {reference}"))?;
            if !quiet {
                eprintln!(
                    "{reference} is {}: deleting that manifest removes every tag pointing at it",
                    desc.digest
                );
            }
            desc.digest
        }
    };
    let target = reference.at_digest(digest.clone());
    repo.delete_manifest(&digest)
        .await
        .with_context(|| format!("deleting {target}"))?;
    if args.json {
        // `resolvedFrom`: the tag resolved to the digest; null when the reference had a digest.
        let resolved_from = reference.tag.clone().filter(|_| reference.digest.is_none());
        let (target, digest) = (target.to_string(), digest.to_string());
        return print_json(&json!({
            "reference": target, "digest": digest, "resolvedFrom": resolved_from
        }));
    }
    if !quiet {
        println!("deleted {target}");
    }
    Ok(())
}
