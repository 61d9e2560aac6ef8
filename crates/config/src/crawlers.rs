//! Verified crawler address lists (`[node] good_crawlers`): files in the JSON format Google and Bing publish
//! (`{"prefixes":[{"ipv4Prefix":"66.249.64.0/27"},{"ipv6Prefix":"2001:4860:4801:10::/64"}]}`) or plain text with
//! one address range per line (`#` starts a comment). The JSON is read by a small scanner for the two prefix
//! keys rather than a JSON library: the published files are flat, and an error still names its line.

use crate::model::IpNet;
use crate::values::ip_net;

/// Why a crawler list could not be read: the 1-based line and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrawlerListError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for CrawlerListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The ranges of one list file's text. A JSON list (text starting with `{`) must name at least one prefix.
pub fn parse_crawler_list(text: &str) -> Result<Vec<IpNet>, CrawlerListError> {
    if text.trim_start().starts_with('{') {
        parse_json(text)
    } else {
        parse_lines(text)
    }
}

fn parse_lines(text: &str) -> Result<Vec<IpNet>, CrawlerListError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        out.push(ip_net(line).map_err(|message| CrawlerListError {
            line: i + 1,
            message,
        })?);
    }
    Ok(out)
}

fn parse_json(text: &str) -> Result<Vec<IpNet>, CrawlerListError> {
    let mut out = Vec::new();
    for key in ["\"ipv4Prefix\"", "\"ipv6Prefix\""] {
        let mut from = 0;
        while let Some(pos) = text[from..].find(key) {
            let at = from + pos;
            let err = |message: String| CrawlerListError {
                line: line_of(text, at),
                message,
            };
            let rest = text[at + key.len()..].trim_start();
            let rest = rest
                .strip_prefix(':')
                .ok_or_else(|| err(format!("expected ':' after {key}")))?
                .trim_start();
            let rest = rest
                .strip_prefix('"')
                .ok_or_else(|| err(format!("expected a quoted range after {key}:")))?;
            let end = rest
                .find('"')
                .ok_or_else(|| err("missing the closing '\"' of the range".to_owned()))?;
            let net = ip_net(&rest[..end]).map_err(err)?;
            let v4 = key.contains('4');
            if net.addr.is_ipv4() != v4 {
                return Err(err(format!(
                    "{:?} is not an {} range",
                    &rest[..end],
                    if v4 { "IPv4" } else { "IPv6" }
                )));
            }
            out.push(net);
            from = at + key.len();
        }
    }
    if out.is_empty() {
        return Err(CrawlerListError {
            line: 1,
            message: "no \"ipv4Prefix\" or \"ipv6Prefix\" entry; expected the format Google and Bing publish"
                .to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_published_json_format() {
        let text = r#"{
  "creationTime": "2024-01-01T00:00:00.000000",
  "prefixes": [
    {
      "ipv6Prefix": "2001:4860:4801:10::/64"
    },
    {
      "ipv4Prefix": "66.249.64.0/27"
    }
  ]
}"#;
        let nets = parse_crawler_list(text).unwrap();
        assert_eq!(nets.len(), 2);
        assert!(
            nets.iter()
                .any(|n| n.contains("66.249.64.9".parse().unwrap()))
        );
        assert!(
            nets.iter()
                .any(|n| n.contains("2001:4860:4801:10::7".parse().unwrap()))
        );
    }

    #[test]
    fn errors_name_the_line() {
        let bad = "{\n \"prefixes\": [\n  {\"ipv4Prefix\": \"66.249.64.0/33\"}\n ]\n}";
        assert_eq!(parse_crawler_list(bad).unwrap_err().line, 3);
        let swapped = "{\"prefixes\":[{\"ipv4Prefix\":\"2001:db8::/32\"}]}";
        assert!(
            parse_crawler_list(swapped)
                .unwrap_err()
                .message
                .contains("IPv4")
        );
        assert_eq!(parse_crawler_list("{}").unwrap_err().line, 1);
        let lines = "# Bingbot\n157.55.39.0/24\n\n40.77.167.0/24 # comment\nnot-a-range\n";
        assert_eq!(parse_crawler_list(lines).unwrap_err().line, 5);
        assert_eq!(parse_crawler_list(&lines[..40]).unwrap().len(), 2);
    }

    #[test]
    fn never_panics_on_random_text() {
        // A fixed-seed random walk over the characters the format uses.
        let alphabet: &[u8] = b"{}[]:\",/ 0123456789abcdef.ipv4Prefix6\n";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2_000 {
            let mut s = String::new();
            for _ in 0..(x % 80) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
            }
            let _ = parse_crawler_list(&s);
            let _ = parse_crawler_list(&format!("{{\"ipv4Prefix\":{s}"));
        }
    }
}
