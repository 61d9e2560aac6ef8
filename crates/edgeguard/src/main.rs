//! The `edgeguard` binary: command-line parsing and wiring only.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "edgeguard",
    version,
    about = "CDN edge node with HTTP-flood protection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file.
    Check {
        /// Path to the TOML configuration.
        #[arg(long)]
        config: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => {
            let text = std::fs::read_to_string(&config)?;
            println!("{}: {} bytes read", config.display(), text.len());
            Ok(())
        }
    }
}
