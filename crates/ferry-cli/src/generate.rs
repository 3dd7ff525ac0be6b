//! `ferry completions` and `ferry man`: generated from the same clap definitions the parser uses, so they
//! cannot drift from the real options.

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "ferry", &mut std::io::stdout());
    Ok(())
}

pub fn man(args: ManArgs, quiet: bool) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match args.out {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            if !quiet {
                println!(
                    "wrote ferry.1 and one page per command into {}",
                    dir.display()
                );
            }
        }
    }
    Ok(())
}
