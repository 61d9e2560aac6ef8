//! URI matchers of custom rules: exact, prefix and fuzzy (`.` = one character, `*` = any run).
//!
//! Both the rule's `uri` and the request's URI are compared in a normalised form: percent-escapes of unreserved
//! characters (`A-Z a-z 0-9 - . _ ~`) are decoded and the hex digits of the remaining escapes upper-cased
//! (RFC 3986 section 6.2.2), so `/%72egister` cannot slip past a rule on `/register`. Escapes of reserved
//! characters (`%2F`, `%3F`, ...) stay escaped: decoding them would change the URI's structure. Dot-segments and
//! case are not normalised (paths are case-sensitive).

use std::borrow::Cow;

/// How a rule's `uri` is compared. The derived order is the default evaluation order: exact, prefix, fuzzy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchKind {
    Exact,
    Prefix,
    Fuzzy,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::Prefix => "prefix",
            MatchKind::Fuzzy => "fuzzy",
        }
    }

    pub fn parse(s: &str) -> Option<MatchKind> {
        match s {
            "exact" => Some(MatchKind::Exact),
            "prefix" => Some(MatchKind::Prefix),
            "fuzzy" => Some(MatchKind::Fuzzy),
            _ => None,
        }
    }
}

/// One element of a compiled fuzzy pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    /// One byte of literal text. Literal characters are whole UTF-8 sequences, so these come in full characters.
    Lit(u8),
    /// `.`: exactly one character.
    One,
    /// `*`: any run of characters, including none. Never two in a row.
    Star,
}

/// A compiled `uri` + `match` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriMatcher {
    kind: MatchKind,
    /// The normalised `uri`; for fuzzy patterns, as written (the compiled form is `fuzzy`).
    pattern: String,
    fuzzy: Vec<Pat>,
}

impl UriMatcher {
    pub fn new(kind: MatchKind, uri: &str) -> UriMatcher {
        match kind {
            MatchKind::Exact | MatchKind::Prefix => UriMatcher {
                kind,
                pattern: normalize(uri).into_owned(),
                fuzzy: Vec::new(),
            },
            MatchKind::Fuzzy => UriMatcher {
                kind,
                pattern: uri.to_owned(),
                fuzzy: compile_fuzzy(uri),
            },
        }
    }

    pub fn kind(&self) -> MatchKind {
        self.kind
    }

    /// The `uri` the matcher compares against (normalised for exact and prefix).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the request URI matches.
    ///
    /// Hot path: no allocation. Exact and prefix are linear; fuzzy is O(pattern × URI) in the worst case.
    pub fn matches(&self, uri: &RequestUri<'_>) -> bool {
        let text = uri.text();
        match self.kind {
            MatchKind::Exact => {
                text.len() == self.pattern.len() && text.starts_with(self.pattern.as_bytes())
            }
            MatchKind::Prefix => text.starts_with(self.pattern.as_bytes()),
            MatchKind::Fuzzy => fuzzy_match(&self.fuzzy, &text),
        }
    }
}

/// The URI a request is compared with: its normalised path, and its normalised query when `parameter_check` is
/// on. Built once per request and shared by every rule's matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUri<'a> {
    path: Cow<'a, str>,
    query: Option<Cow<'a, str>>,
}

impl<'a> RequestUri<'a> {
    /// `query` is the part after `?` (without it); `None` compares the path alone. Allocates only when the URI
    /// holds percent-escapes.
    pub fn new(path: &'a str, query: Option<&'a str>) -> RequestUri<'a> {
        RequestUri {
            path: normalize(path),
            query: query.map(normalize),
        }
    }

    fn text(&self) -> Text<'_> {
        match &self.query {
            Some(query) => Text {
                parts: [self.path.as_bytes(), b"?", query.as_bytes()],
            },
            None => Text {
                parts: [self.path.as_bytes(), b"", b""],
            },
        }
    }
}

/// `path`, `?`, `query` seen as one byte string without concatenating them.
struct Text<'a> {
    parts: [&'a [u8]; 3],
}

impl Text<'_> {
    fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    fn get(&self, mut i: usize) -> Option<u8> {
        for part in self.parts {
            if i < part.len() {
                return Some(part[i]);
            }
            i -= part.len();
        }
        None
    }

    fn starts_with(&self, mut needle: &[u8]) -> bool {
        for part in self.parts {
            let n = needle.len().min(part.len());
            if part[..n] != needle[..n] {
                return false;
            }
            needle = &needle[n..];
        }
        needle.is_empty()
    }
}

fn compile_fuzzy(uri: &str) -> Vec<Pat> {
    let mut out = Vec::with_capacity(uri.len());
    let mut literal_start = 0;
    let flush =
        |out: &mut Vec<Pat>, literal: &str| out.extend(normalize(literal).bytes().map(Pat::Lit));
    for (i, c) in uri.char_indices() {
        let wildcard = match c {
            '.' => Pat::One,
            '*' => Pat::Star,
            _ => continue,
        };
        flush(&mut out, &uri[literal_start..i]);
        literal_start = i + 1;
        // Consecutive stars mean the same as one; collapsing them keeps the matcher's backtracking simple.
        if !(wildcard == Pat::Star && out.last() == Some(&Pat::Star)) {
            out.push(wildcard);
        }
    }
    flush(&mut out, &uri[literal_start..]);
    out
}

/// Length in bytes of the UTF-8 character starting with `lead`.
fn char_width(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Whole-text glob match. Greedy, remembering only the last `*`: when a later literal fails, that star absorbs
/// one more character and matching resumes after it. Earlier stars never need revisiting because `*` matches
/// anything and `.` has a fixed width, so the worst case is O(pattern × text), never exponential.
fn fuzzy_match(pattern: &[Pat], text: &Text<'_>) -> bool {
    let len = text.len();
    let (mut p, mut t) = (0, 0);
    // Position of the last star seen in the pattern, and the text position it currently extends to.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < len {
        let step = match (pattern.get(p), text.get(t)) {
            (Some(Pat::Lit(b)), Some(c)) if *b == c => Some(1),
            (Some(Pat::One), Some(c)) => Some(char_width(c)),
            _ => None,
        };
        if let Some(step) = step {
            p += 1;
            t += step;
        } else if pattern.get(p) == Some(&Pat::Star) {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, absorbed)) = backtrack {
            let next = absorbed + text.get(absorbed).map_or(1, char_width);
            backtrack = Some((star, next));
            p = star + 1;
            t = next;
        } else {
            return false;
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|pat| *pat == Pat::Star)
}

/// RFC 3986 percent-encoding normalisation; see the module comment. Borrows when there is nothing to do.
pub fn normalize(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escape {
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                out.push(char::from(b))
            }
            Some(b) => {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
            None => {
                // Copy the whole character (the input is UTF-8; only escapes are rewritten).
                let width = char_width(bytes[i]);
                out.push_str(&s[i..i + width]);
                i += width;
                continue;
            }
        }
        i += 3;
    }
    Cow::Owned(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
