//! Subcommands that run once and exit: `check`, `recommend`, `export`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use edgeguard_store::LogFormat;

/// `edgeguard check`: every error on its own line as `FILE:LINE: KEY: MESSAGE`.
pub fn check(path: &Path) -> ExitCode {
    match edgeguard_config::load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} domain{}, {} limit_req zone{}, {} limit_conn zone{})",
                path.display(),
                config.domains.len(),
                plural(config.domains.len()),
                config.limit_req_zones.len(),
                plural(config.limit_req_zones.len()),
                config.limit_conn_zones.len(),
                plural(config.limit_conn_zones.len()),
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{}:{}: {}: {}", path.display(), e.line, e.key, e.message);
            }
            let n = errors.len();
            eprintln!("{}: {n} error{}", path.display(), plural(n));
            ExitCode::FAILURE
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[derive(clap::Args)]
pub struct RecommendArgs {
    /// Access log to read.
    #[arg(long)]
    log: PathBuf,
    /// Line format; `auto` takes JSON for lines starting with `{`, combined otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    format: Format,
    /// Print a JSON object with `qps`, `points` and `top_points` instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Auto,
    Combined,
    Json,
}

/// `edgeguard recommend`: SPEC section 3's default limit from a log; the last line is `recommended_qps: N`.
pub fn recommend(args: &RecommendArgs) -> anyhow::Result<()> {
    let file =
        File::open(&args.log).with_context(|| format!("cannot open {}", args.log.display()))?;
    let format = match args.format {
        Format::Auto => LogFormat::Auto,
        Format::Combined => LogFormat::Combined,
        Format::Json => LogFormat::Json,
    };
    let (rec, stats) = edgeguard_store::recommend_from_log(BufReader::new(file), format)
        .with_context(|| format!("cannot read {}", args.log.display()))?;
    if args.json {
        let out = serde_json::json!({
            "qps": rec.qps,
            "points": rec.points,
            "top_points": rec.top_points,
            "lines": stats.lines,
            "malformed": stats.malformed,
        });
        println!("{out}");
    } else {
        println!(
            "lines read: {} ({} malformed, skipped)",
            stats.lines, stats.malformed
        );
        println!("five-minute points with traffic: {}", rec.points);
        println!(
            "busiest points (max requests of one IP): {:?}",
            rec.top_points
        );
        println!("recommended_qps: {}", rec.qps);
    }
    Ok(())
}

/// `edgeguard export`: the configuration as the node understands it, every default written out.
pub fn export(path: &Path) -> anyhow::Result<()> {
    let config =
        edgeguard_config::load(path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    print!("{}", edgeguard_config::to_toml(&config));
    Ok(())
}

#[derive(clap::Args)]
pub struct AllowlistArgs {
    /// Path to the TOML configuration.
    #[arg(long, short)]
    config: PathBuf,
    /// The domain whose back-to-origin addresses to list.
    #[arg(long)]
    domain: String,
    /// Output: nginx `allow` lines, iptables rules, or one address per line.
    #[arg(long, value_enum, default_value = "plain")]
    format: AllowlistFormat,
    /// With `--format iptables`: the origin's port to open (default: every port).
    #[arg(long)]
    port: Option<u16>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AllowlistFormat {
    Nginx,
    Iptables,
    Plain,
}

/// `edgeguard origin-allowlist`: the addresses an origin should allow for a domain (seed 000's
/// back-to-origin list), in a form the origin can paste.
pub fn origin_allowlist(args: &AllowlistArgs) -> anyhow::Result<()> {
    let path = &args.config;
    let config =
        edgeguard_config::load(path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    let wanted = args.domain.trim_end_matches('.').to_ascii_lowercase();
    let Some(domain) = config.domains.iter().find(|d| d.name == wanted) else {
        anyhow::bail!("{}: no domain named {:?}", path.display(), args.domain);
    };
    // This node's own addresses as configured; an unspecified listen address (0.0.0.0) says nothing about the
    // source address towards the origin, so it is left out and mentioned.
    let own: Vec<std::net::IpAddr> = config
        .node
        .listen
        .iter()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    let list = edgeguard_admin::back_to_origin(&config, domain, &own);
    for p in &list.parents {
        if let Some(e) = &p.error {
            eprintln!("warning: parent {}: {e}", p.upstream);
        }
    }
    if list.addresses.is_empty() {
        anyhow::bail!(
            "no back-to-origin address is known for {}: the node listens on unspecified addresses and the domain has no parents; list the node's public addresses yourself",
            domain.name
        );
    }
    let comment = format!("back-to-origin addresses of {} ({})", domain.name, list.via);
    match args.format {
        AllowlistFormat::Plain => {
            for a in &list.addresses {
                println!("{a}");
            }
        }
        AllowlistFormat::Nginx => {
            println!("# {comment}");
            for a in &list.addresses {
                println!("allow {a};");
            }
            println!("deny all;");
        }
        AllowlistFormat::Iptables => {
            println!("# {comment}");
            let port = args
                .port
                .map(|p| format!(" -p tcp --dport {p}"))
                .unwrap_or_default();
            for a in &list.addresses {
                let cmd = if a.contains(':') {
                    "ip6tables"
                } else {
                    "iptables"
                };
                println!("{cmd} -A INPUT -s {a}{port} -j ACCEPT");
            }
        }
    }
    Ok(())
}
