//! `ferry cache`: look at and tidy the shared blob cache.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use ferry_store::BlobCache;
use ferry_store::cache::{PruneOptions, PruneReport};

use crate::cli::{CacheArgs, CacheCommand};
use crate::output::{human, report};

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
            let u = cache.usage()?;
            if a.json {
                let mut v = serde_json::to_value(&u)?;
                v["dir"] = serde_json::json!(cache.store_dir());
                println!("{v}");
            } else {
                println!(
                    "{} blobs, {} in {}; {} unfinished download files ({})",
                    u.blobs,
                    human(u.bytes),
                    cache.store_dir().display(),
                    u.partials,
                    human(u.partial_bytes)
                );
            }
            Ok(())
        }
        CacheCommand::Verify(a) => {
            let r = open(&a)?.verify(&|_| {})?;
            report(a.json, quiet, &r, |r| {
                let (n, bytes, bad) = (r.checked, human(r.bytes), r.evicted.len());
                println!("{n} blobs ({bytes}) checked, {bad} corrupt removed");
                r.evicted
                    .iter()
                    .for_each(|d| println!("removed corrupt {d}"));
            })
        }
        CacheCommand::Prune(p) => {
            let opts = PruneOptions {
                older_than: p.older_than,
                max_size: p.max_size,
            };
            let report = open_exclusive(&p.common)?.prune(&opts)?;
            report_removal(&p.common, quiet, &report)
        }
        CacheCommand::Clean(a) => {
            let report = open_exclusive(&a)?.clean()?;
            report_removal(&a, quiet, &report)
        }
    }
}

fn report_removal(a: &CacheArgs, quiet: bool, r: &PruneReport) -> anyhow::Result<()> {
    let json = serde_json::json!({"removed": r.blobs, "bytes": r.bytes, "tempFiles": r.temp_files});
    report(a.json, quiet, &json, |_| {
        let (n, temp, bytes) = (r.blobs, r.temp_files, human(r.bytes));
        println!("removed {n} blobs and {temp} temp files ({bytes})");
    })
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
    let timeout = a.lock_timeout;
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
