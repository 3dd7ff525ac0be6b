//! The small registry commands: `ls` (tags), `catalog` (repositories), `tag` and `delete`.

use anyhow::{Context, bail};
use ferry_oci::Reference;
use ferry_registry::Repository;
use serde::Serialize;

use crate::cli::{CatalogArgs, DeleteArgs, LsArgs, TagArgs};
use crate::output::print_json;
use crate::registry_opts;

/// `registry.local:5000`, `https://registry.local/` → `registry.local:5000`, `registry.local`; a repository
/// path or something that is not a host is refused (`nginx` would silently mean Docker Hub).
pub fn registry_host(input: &str) -> anyhow::Result<String> {
    let h = input
        .strip_prefix("https://")
        .or_else(|| input.strip_prefix("http://"))
        .unwrap_or(input)
        .trim_end_matches('/');
    let h = h
        .strip_suffix("/v1")
        .or_else(|| h.strip_suffix("/v2"))
        .unwrap_or(h);
    let not_a_host = || {
        anyhow::anyhow!(
            "{input:?} is not a registry host: give host[:port], e.g. registry.local:5000 or docker.io"
        )
    };
    if h.is_empty() || h.contains('/') {
        return Err(not_a_host());
    }
    let parsed: Reference = format!("{h}/x").parse().map_err(|_| not_a_host())?;
    let same = parsed.registry == h
        || (parsed.registry == "docker.io"
            && matches!(h, "index.docker.io" | "registry-1.docker.io"));
    if !same {
        return Err(not_a_host());
    }
    Ok(parsed.registry)
}

#[derive(Serialize)]
struct TagList {
    repository: String,
    tags: Vec<String>,
}

pub async fn run_ls(args: LsArgs) -> anyhow::Result<()> {
    let reference: Reference = args.repository.parse()?;
    let last = args.repository.rsplit('/').next().unwrap_or_default();
    if last.contains(':') || args.repository.contains('@') {
        bail!(
            "ls lists a repository's tags: give {} without a tag or digest",
            reference.name()
        );
    }
    let client = registry_opts::client(&args.registry, None)?;
    let repo = Repository::new(client, &reference.registry, &reference.repository);
    let tags = repo
        .list_tags_paged(args.page_size.map(|n| n as usize))
        .await?;
    if args.json {
        return print_json(&TagList {
            repository: reference.name(),
            tags,
        });
    }
    for t in tags {
        println!("{t}");
    }
    Ok(())
}

#[derive(Serialize)]
struct Catalog {
    registry: String,
    repositories: Vec<String>,
}

pub async fn run_catalog(args: CatalogArgs) -> anyhow::Result<()> {
    let host = registry_host(&args.host)?;
    let client = registry_opts::client(&args.registry, None)?;
    let repositories = client
        .catalog(&host, args.page_size.map(|n| n as usize))
        .await?;
    if args.json {
        return print_json(&Catalog {
            registry: host,
            repositories,
        });
    }
    for r in repositories {
        println!("{r}");
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tagged {
    source: String,
    digest: String,
    media_type: String,
    tagged: Vec<String>,
}

pub async fn run_tag(args: TagArgs, quiet: bool) -> anyhow::Result<()> {
    let reference: Reference = args.reference.parse()?;
    // Validate every tag before changing anything.
    let mut targets = Vec::new();
    for raw in &args.tags {
        let tag = raw.strip_prefix(':').unwrap_or(raw);
        if tag.contains(['/', '@', ':']) {
            bail!(
                "{raw:?} is not a tag: `ferry tag` tags within {}; use `ferry copy` for another repository",
                reference.name()
            );
        }
        let named: Reference = format!("{}:{tag}", reference.name())
            .parse()
            .with_context(|| format!("invalid tag {raw:?}"))?;
        targets.push((tag.to_string(), named));
    }
    let client = registry_opts::client(&args.registry, None)?;
    let repo = Repository::new(client, &reference.registry, &reference.repository);
    let (desc, bytes) = repo
        .resolve(&reference.target())
        .await
        .with_context(|| format!("resolving {reference}"))?;
    let mut tagged = Vec::new();
    for (tag, named) in targets {
        repo.tag(&desc, bytes.clone(), &tag)
            .await
            .with_context(|| format!("tagging {} as {named}", desc.digest))?;
        if !quiet && !args.json {
            println!("{named} → {}", desc.digest);
        }
        tagged.push(named.to_string());
    }
    if args.json {
        return print_json(&Tagged {
            source: reference.to_string(),
            digest: desc.digest.to_string(),
            media_type: desc.media_type,
            tagged,
        });
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Deleted {
    reference: String,
    digest: String,
    /// The tag that was resolved to the digest; null when the reference had a digest.
    resolved_from: Option<String>,
}

pub async fn run_delete(args: DeleteArgs, quiet: bool) -> anyhow::Result<()> {
    let reference: Reference = args.reference.parse()?;
    let client = registry_opts::client(&args.registry, None)?;
    let repo = Repository::new(client, &reference.registry, &reference.repository);
    let (digest, resolved_from) = match &reference.digest {
        Some(d) => (d.clone(), None),
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
            (desc.digest, reference.tag.clone())
        }
    };
    let target = reference.at_digest(digest.clone());
    repo.delete_manifest(&digest)
        .await
        .with_context(|| format!("deleting {target}"))?;
    if args.json {
        return print_json(&Deleted {
            reference: target.to_string(),
            digest: digest.to_string(),
            resolved_from,
        });
    }
    if !quiet {
        println!("deleted {target}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_hosts() {
        use super::registry_host;
        assert_eq!(registry_host("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(
            registry_host("https://reg.example/").unwrap(),
            "reg.example"
        );
        assert_eq!(registry_host("index.docker.io").unwrap(), "docker.io");
        assert_eq!(
            registry_host("https://index.docker.io/v1/").unwrap(),
            "docker.io"
        );
        assert_eq!(registry_host("localhost").unwrap(), "localhost");
        assert!(registry_host("nginx").is_err());
        assert!(registry_host("reg.example/ns").is_err());
        assert!(registry_host("").is_err());
    }
}
