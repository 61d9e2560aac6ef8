//! The configuration file: TOML in, a validated [`Config`] out, or every error at once, each naming the full
//! dotted key (`domain[0].limit_req[1].burst`) and the line. Parsing happens in two stages, as in sozu and
//! linkerd: the document is read into raw file-shaped structs whose fields are all optional and keep their
//! spans (unknown keys and wrong types are reported there), then those are checked against nginx's rules and
//! SPEC section 8 and turned into the model. [`to_toml`] writes a model back as a file that reads back equal,
//! for the admin API's export; [`edit_toml`] writes a changed model into the operator's file, keeping its
//! comments and order. Every default lives in [`defaults`].
//!
//! Not here: applying a configuration (the proxy does that), watching files or handling SIGHUP (the binary
//! does), and the meaning of rules beyond their validation (`edgeguard-rules`).

pub mod certs;
pub mod crawlers;
pub mod defaults;
mod error;
pub mod model;
mod raw;
mod to_toml;
mod validate;
mod values;
mod write_back;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub use to_toml::to_toml;
pub use validate::challenge_path;
pub use write_back::edit_toml;

use error::{LineIndex, Sink};

/// Parses and validates a configuration file's text. `admin.token` falls back to the
/// `EDGEGUARD_ADMIN_TOKEN` environment variable when the file has none.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_with_env(text, |name| std::env::var(name).ok())
}

/// [`parse`] with the environment given as a function, so callers (and tests) decide what it holds.
pub fn parse_with_env(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    parse_in(text, Path::new("."), env)
}

/// [`parse_with_env`] for a file in the folder `base`: relative certificate and key paths are taken from it.
pub fn parse_in(
    text: &str,
    base: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let lines = LineIndex::new(text);
    let mut sink = Sink::new(&lines);
    let (doc, syntax) = toml::de::DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // The recovered document may be missing whole tables; checking it would add noise, not help.
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            sink.err(
                "",
                &span,
                format!("TOML syntax error: {}", e.message().trim()),
            );
        }
        return Err(ConfigErrors::new(sink.errors));
    }
    let raw = raw::read(&mut sink, &doc);
    match validate::validate(&mut sink, raw, &env, base) {
        Some(config) if sink.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors::new(sink.errors)),
    }
}

/// Reads and parses the file at `path`. An unreadable file is one error keyed by the path, with line 0.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let base = path.parent().filter(|p| !p.as_os_str().is_empty());
            parse_in(&text, base.unwrap_or(Path::new(".")), |name| {
                std::env::var(name).ok()
            })
        }
        Err(e) => Err(ConfigErrors::new(vec![ConfigError {
            key: path.display().to_string(),
            line: 0,
            message: format!("cannot read the configuration file: {e}"),
        }])),
    }
}
