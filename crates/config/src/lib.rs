//! The configuration file: TOML in, a validated [`Config`] out, or every error at once, each naming the key
//! and the line. Parsing happens in two stages (raw file structs with spans, then the validated model).
//!
//! Not here: applying a configuration (the proxy does that) or watching files.

pub mod model;

pub use model::*;
