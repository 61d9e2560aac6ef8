//! Errors that name the key and the line, and the byte-offset -> line table behind them.

use std::fmt;
use std::ops::Range;

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// Full dotted path of the key at fault, e.g. `domain[0].limit_req[1].burst` or `limit_req_zone[0].rate`.
    /// Empty for a TOML syntax error; the file name for an error reading the file.
    pub key: String,
    /// 1-based line of the key (or of its table's header when the key is missing). 0 when no line applies
    /// (the file could not be read).
    pub line: usize,
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        match (self.line, self.key.is_empty()) {
            (0, true) => self.message.clone(),
            (0, false) => format!("{}: {}", self.key, self.message),
            (line, true) => format!("line {line}: {}", self.message),
            (line, false) => format!("line {line}: {}: {}", self.key, self.message),
        }
    }
}

/// Every error found in one run, in line order. Displayed one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub(crate) fn new(mut errors: Vec<ConfigError>) -> Self {
        // Stable, so errors on one line keep the order they were found in.
        errors.sort_by_key(|e| e.line);
        Self { errors }
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// Maps byte offsets of the source text to 1-based line numbers.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    pub(crate) fn line_of(&self, span: &Range<usize>) -> usize {
        self.line(span.start)
    }
}

/// Collects errors while the file is read and checked, so one run reports all of them.
pub(crate) struct Sink<'a> {
    pub(crate) lines: &'a LineIndex,
    pub(crate) errors: Vec<ConfigError>,
    /// Keys an unknown key was taken to be a typo of ("did you mean"): not reported again as missing.
    pub(crate) covered: Vec<String>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(lines: &'a LineIndex) -> Self {
        Self {
            lines,
            errors: Vec::new(),
            covered: Vec::new(),
        }
    }

    /// Whether an error was already reported at `key` or inside it, so a bad value is not also "missing".
    pub(crate) fn reported(&self, key: &str) -> bool {
        self.covered.iter().any(|c| c == key)
            || self.errors.iter().any(|e| {
                e.key
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            })
    }

    pub(crate) fn err(
        &mut self,
        key: impl Into<String>,
        span: &Range<usize>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            key: key.into(),
            line: self.lines.line_of(span),
            message: message.into(),
        });
    }
}
