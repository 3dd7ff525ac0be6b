//! `ferry sync`: parse flags, call [`ferry_sync::sync`], print the report.

use anyhow::{Context, bail};
use ferry_copy::{Budget, PlatformChoice};
use ferry_sync::{Destination, Naming, Report, Status, SyncFile, SyncOptions};

use crate::cli::SyncArgs;
use crate::output::{human, print_json};
use crate::registry_opts;
use crate::run_copy::open_cache;

pub async fn run(args: SyncArgs, quiet: bool) -> anyhow::Result<()> {
    let file = SyncFile::load(&args.file)?;
    let client_options = registry_opts::options(&args.registry, Some(&args.upload))?;
    let client = ferry_registry::RegistryClient::new(client_options.clone())?;
    let naming = match (args.scoped, args.zarf) {
        (true, _) => Naming::Scoped,
        (_, true) => Naming::Zarf,
        _ => Naming::LastComponent,
    };
    let platform = match &args.platform {
        Some(p) => PlatformChoice::Exactly(p.clone()),
        None => PlatformChoice::All,
    };
    let dest = Destination::open(&args.destination, &client, naming)?;
    let opts = SyncOptions {
        client_options,
        client,
        platform,
        budget: Budget::new(args.transfer.oci_concurrency as usize),
        attempts: args.retries,
        keep_going: args.keep_going,
        plan: args.plan,
        cache: open_cache(&args.transfer)?,
        lock: args.lock.clone(),
        verify: crate::run_copy::verifier(&args.trust)?,
    };
    let report = ferry_sync::sync(&file, &args.file, dest, &opts)
        .await
        .with_context(|| format!("ferry sync -f {}", args.file.display()))?;
    if args.json {
        print_json(&report)?;
    } else if !quiet {
        print_report(&report);
    }
    if report.totals.failed > 0 {
        bail!(
            "{} of {} images failed",
            report.totals.failed,
            report.totals.images
        );
    }
    if let Some(disk) = report.disk.as_ref().filter(|d| !d.enough) {
        bail!(
            "{} has {} free; the sync needs {}",
            disk.path,
            human(disk.available),
            human(disk.needed)
        );
    }
    Ok(())
}

fn print_report(report: &Report) {
    for i in &report.images {
        let to = i.destination.join(", ");
        match i.status {
            Status::UpToDate => println!("{} -> {to}: up to date", i.source),
            Status::Failed => {
                println!("{}: FAILED: {}", i.source, i.error.as_deref().unwrap_or(""))
            }
            Status::Copied | Status::Planned => println!(
                "{} -> {to}: {} {}, {} already there{}",
                i.source,
                human(i.bytes.moving),
                if report.plan { "to move" } else { "moved" },
                human(i.bytes.present),
                if i.bytes.shared > 0 {
                    format!(", {} shared with earlier images", human(i.bytes.shared))
                } else {
                    String::new()
                }
            ),
        }
    }
    let t = &report.totals;
    println!(
        "{} images ({} {}, {} up to date, {} failed): {} {}, {} already at {}",
        t.images,
        t.copied,
        if report.plan { "to copy" } else { "copied" },
        t.up_to_date,
        t.failed,
        human(t.bytes.moving),
        if report.plan { "would move" } else { "moved" },
        human(t.bytes.present),
        report.destination
    );
    if let Some(d) = &report.disk {
        println!(
            "disk at {}: {} free, {} needed: {}",
            d.path,
            human(d.available),
            human(d.needed),
            if d.enough {
                "enough room"
            } else {
                "NOT ENOUGH ROOM"
            }
        );
    }
}
