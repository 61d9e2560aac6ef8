//! Evaluates normal and emergency mode on an access log with generated attacks woven in:
//!
//! ```text
//! cargo run --release -p edgeguard-protect --example evaluate -- LOG [--seeds 1,2,3] [--per-kind 2]
//! ```
//!
//! LOG is an nginx/Apache combined log or edgeguard's JSON lines (its requests are taken as legitimate);
//! `synthetic` uses the generated audience of `edgeguard_protect::episodes::synthetic_legit` (one hour). Prints
//! one report per seed, then the sum over all seeds.

use std::fs::File;
use std::io::BufReader;

use edgeguard_protect::episodes::{EvalLine, synthetic_legit};
use edgeguard_protect::evaluate::{ModeReport, evaluate, format_report};
use edgeguard_store::{LogFormat, LogReader};

fn read_log(path: &str) -> std::io::Result<Vec<EvalLine>> {
    let mut reader = LogReader::new(BufReader::new(File::open(path)?), LogFormat::Auto);
    let mut out = Vec::new();
    while let Some(l) = reader.next_line()? {
        out.push(EvalLine {
            time_ms: l.time_ms,
            client: l.client,
            method: l.method,
            uri: l.uri,
            status: l.status,
            episode: None,
        });
    }
    out.sort_by_key(|l| l.time_ms);
    Ok(out)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(log) = args.first() else {
        eprintln!("usage: evaluate LOG|synthetic [--seeds 1,2,3] [--per-kind N]");
        std::process::exit(2);
    };
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seeds: Vec<u64> = value("--seeds")
        .unwrap_or_else(|| "1,2,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let per_kind: usize = value("--per-kind")
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let mut total: Vec<ModeReport> = Vec::new();
    for seed in seeds {
        let legit = if log == "synthetic" {
            synthetic_legit(seed, 1_700_000_000_000, 1)
        } else {
            match read_log(log) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{log}: {e}");
                    std::process::exit(1);
                }
            }
        };
        let (reports, _) = match evaluate(legit, seed, per_kind) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("evaluation: {e}");
                std::process::exit(1);
            }
        };
        println!("seed {seed}\n{}", format_report(&reports));
        if total.is_empty() {
            total = reports;
        } else {
            for (t, r) in total.iter_mut().zip(&reports) {
                t.absorb(r);
            }
        }
    }
    for t in &mut total {
        t.baseline.clear();
        t.legit_examples.truncate(3);
    }
    println!("all seeds\n{}", format_report(&total));
}
