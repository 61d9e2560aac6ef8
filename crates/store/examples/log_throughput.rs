//! Measures the access-log reader: a million generated combined lines and a million JSON lines, parsed and run
//! through the recommendation, all in memory. Run with `cargo run --release -p edgeguard-store --example
//! log_throughput`; it prints lines per second, it asserts nothing.

use std::io::Cursor;
use std::time::Instant;

use edgeguard_store::{LogFormat, LogReader, recommend_from_log};

const LINES: u64 = 1_000_000;

fn generate(json: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(LINES as usize * 200);
    let start = 1_431_857_100u64;
    for i in 0..LINES {
        let t = start + i / 50; // 50 requests per second, about 5.8 hours
        let ip = format!("10.{}.{}.{}", (i * 7) % 256, (i * 13) % 256, i % 97);
        let line = if json {
            format!(
                "{{\"ts\":{t}.{:03},\"client\":\"{ip}\",\"host\":\"www.example.com\",\"method\":\"GET\",\
                 \"uri\":\"/static/img/{i}.png\",\"status\":200,\"bytes\":{},\"user_agent\":\"Mozilla/5.0 (X11)\"}}\n",
                i % 1000,
                i % 50_000
            )
        } else {
            let s = t % 86_400;
            format!(
                "{ip} - - [17/May/2015:{:02}:{:02}:{:02} +0000] \"GET /static/img/{i}.png HTTP/1.1\" 200 {} \
                 \"http://www.example.com/\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\"\n",
                s / 3600,
                s / 60 % 60,
                s % 60,
                i % 50_000
            )
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn main() {
    for (name, json, format) in [
        ("combined", false, LogFormat::Combined),
        ("json", true, LogFormat::Json),
    ] {
        let data = generate(json);
        let t = Instant::now();
        let mut reader = LogReader::new(Cursor::new(&data), format);
        let parsed = reader.by_ref().filter(|l| l.is_ok()).count();
        let parse_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (rec, stats) = recommend_from_log(Cursor::new(&data), format).expect("in-memory read");
        let rec_s = t.elapsed().as_secs_f64();
        println!(
            "{name}: {} MB, {parsed} lines parsed in {parse_s:.2} s ({:.0} lines/s); recommend {rec_s:.2} s \
             ({:.0} lines/s), malformed {}, qps {}",
            data.len() / 1_000_000,
            parsed as f64 / parse_s,
            stats.parsed as f64 / rec_s,
            stats.malformed,
            rec.qps
        );
    }
}
