//! The `edgeguard` binary: command-line parsing and wiring only. Each subcommand lives in its own module and
//! calls into the library crates.

mod baseline_view;
mod cluster;
mod control;
mod demo;
mod replay;
mod run;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "edgeguard",
    version,
    about = "CDN edge node with HTTP-flood (CC attack) protection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from a configuration file (SIGHUP reloads it, SIGUSR1 reopens the access log, SIGTERM or
    /// Ctrl-C stops gracefully).
    Run {
        /// Path to the TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file: exit 0 if valid, else 1 with every error, each naming its key and line.
    Check {
        /// Path to the TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start a local origin, a parent and an edge with protection on, print what to try, run until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Compute the recommended IP access limit (qps) from an access log (nginx/Apache combined or JSON lines).
    Recommend(tools::RecommendArgs),
    /// Print the addresses an origin should allow for a domain (its parents, or this node).
    OriginAllowlist(tools::AllowlistArgs),
    /// What-if: run an access log through a domain's protection on the log's timestamps and report what would
    /// have been limited, blocked or challenged, per rule and per client IP.
    Replay(replay::ReplayArgs),
    /// Print a configuration file back in canonical form, with every default written out.
    Export {
        /// Path to the TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    resident_pages_only();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Check { config } => return tools::check(&config),
        Command::Demo(args) => demo::demo(args),
        Command::Recommend(args) => tools::recommend(&args),
        Command::Export { config } => tools::export(&config),
        Command::Replay(args) => replay::replay(&args),
        Command::OriginAllowlist(args) => tools::origin_allowlist(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgeguard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Memory the node holds is memory it uses: transparent huge pages are turned off for the process, so touching
/// one byte of a table or of the allocator's arena makes 4 KiB resident, not 2 MiB. Without this, an idle
/// node with the default configuration was 42 MB resident (30 MB of it huge pages over a few KiB of use)
/// against 15 MB, and the protection tables' and cache's budgets were exceeded in 2 MiB steps by sparse use.
/// An operator who wants huge pages anyway sets `MIMALLOC_ALLOW_THP=1`.
fn resident_pages_only() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes no pointers; it only sets a flag on this process.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}
