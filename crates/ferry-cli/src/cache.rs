//! `ferry cache`: look at and tidy the shared blob cache.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use ferry_store::BlobCache;
use ferry_store::cache::CachedBlob;

use crate::cli::{CacheArgs, CacheCommand};
use crate::output::human;

pub async fn run(cmd: CacheCommand, quiet: bool) -> anyhow::Result<()> {
    // Cache maintenance is file-system work: keep it off the async workers.
    tokio::task::spawn_blocking(move || run_blocking(cmd, quiet))
        .await
        .context("cache task failed")?
}

fn run_blocking(cmd: CacheCommand, quiet: bool) -> anyhow::Result<()> {
    match cmd {
        CacheCommand::Dir(a) => {
            println!("{}", root(&a)?.display());
            Ok(())
        }
        CacheCommand::Ls(a) => {
            let cache = open(&a)?;
            let blobs = cache.list()?;
            if a.json {
                crate::output::print_json(&blobs)?;
            } else {
                for b in &blobs {
                    println!("{}  {:>14}  {}", b.digest, b.size, age(b.last_used));
                }
            }
            Ok(())
        }
        CacheCommand::Du(a) => {
            let cache = open(&a)?;
            let blobs = cache.list()?;
            let bytes: u64 = blobs.iter().map(|b| b.size).sum();
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"dir": cache.store_dir(), "blobs": blobs.len(), "bytes": bytes})
                );
            } else {
                println!(
                    "{} blobs, {} in {}",
                    blobs.len(),
                    human(bytes),
                    cache.store_dir().display()
                );
            }
            Ok(())
        }
        CacheCommand::Verify(a) => {
            let cache = open(&a)?;
            let report = cache.verify(&|_| {})?;
            if a.json {
                crate::output::print_json(&report)?;
            } else if !quiet {
                println!(
                    "{} blobs ({}) checked, {} corrupt removed",
                    report.checked,
                    human(report.bytes),
                    report.evicted.len()
                );
                for d in &report.evicted {
                    println!("removed corrupt {d}");
                }
            }
            Ok(())
        }
        CacheCommand::Prune(p) => {
            let cache = open_exclusive(&p.common)?;
            let mut blobs = cache.list()?;
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut doomed: Vec<CachedBlob> = Vec::new();
            if let Some(older) = &p.older_than {
                let cutoff = now.saturating_sub(parse_duration(older)?.as_secs());
                let (old, keep): (Vec<_>, Vec<_>) =
                    blobs.into_iter().partition(|b| b.last_used < cutoff);
                doomed.extend(old);
                blobs = keep;
            }
            if let Some(max) = &p.max_size {
                let max = parse_size(max)?;
                blobs.sort_by_key(|b| std::cmp::Reverse(b.last_used));
                let mut total = 0u64;
                for b in blobs {
                    total += b.size;
                    if total > max {
                        doomed.push(b);
                    }
                }
            }
            let freed: u64 = doomed.iter().map(|b| b.size).sum();
            cache.remove(&doomed.iter().map(|b| b.digest.clone()).collect::<Vec<_>>());
            let stale = cache.remove_stale_temp_files();
            report_removal(&p.common, quiet, doomed.len(), freed, stale)
        }
        CacheCommand::Clean(a) => {
            let cache = open_exclusive(&a)?;
            let blobs = cache.list()?;
            let freed: u64 = blobs.iter().map(|b| b.size).sum();
            cache.remove(&blobs.iter().map(|b| b.digest.clone()).collect::<Vec<_>>());
            let stale = cache.remove_stale_temp_files();
            report_removal(&a, quiet, blobs.len(), freed, stale)
        }
    }
}

fn report_removal(
    a: &CacheArgs,
    quiet: bool,
    blobs: usize,
    bytes: u64,
    temps: u64,
) -> anyhow::Result<()> {
    if a.json {
        println!(
            "{}",
            serde_json::json!({"removed": blobs, "bytes": bytes, "tempFiles": temps})
        );
    } else if !quiet {
        println!(
            "removed {blobs} blobs ({}), {temps} stale temp files",
            human(bytes)
        );
    }
    Ok(())
}

fn root(a: &CacheArgs) -> anyhow::Result<PathBuf> {
    match &a.cache {
        Some(d) => Ok(d.clone()),
        None => BlobCache::default_root()
            .context("no cache directory: set $HOME or $FERRY_CACHE, or pass --cache DIR"),
    }
}

fn open(a: &CacheArgs) -> anyhow::Result<BlobCache> {
    let root = root(a)?;
    BlobCache::open(&root).with_context(|| format!("opening the cache {}", root.display()))
}

fn open_exclusive(a: &CacheArgs) -> anyhow::Result<BlobCache> {
    let root = root(a)?;
    let timeout = parse_duration(&a.lock_timeout)?;
    let shown = root.display().to_string();
    BlobCache::open_exclusive(&root, timeout, &|| {
        eprintln!("waiting up to {timeout:?} for other ferry processes using the cache {shown}…")
    })
    .with_context(|| format!("locking the cache {}", root.display()))
}

/// `90s`, `15m`, `12h`, `30d`, `2w`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("invalid duration {s:?}: expected e.g. 30s, 15m, 12h, 30d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("invalid duration {s:?}: the unit must be s, m, h, d or w"),
    };
    Ok(Duration::from_secs(n * secs))
}

/// `500M`, `50G`, `1T`, `1024` (bytes); powers of 1024.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim_end_matches(['B', 'b', 'i']);
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("invalid size {s:?}: expected e.g. 500M, 50G"))?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => bail!("invalid size {s:?}: the unit must be K, M, G or T"),
    };
    Ok(n * mult)
}

fn age(last_used: u64) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(last_used);
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        7200..=172_799 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("lots").is_err());
        assert_eq!(human(1536), "1.5 KiB");
    }
}
