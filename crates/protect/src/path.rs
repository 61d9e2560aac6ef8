//! The request path as nginx's `$uri` has it, which is how locations, rules and challenge prefixes all see a
//! path: `%XX` escapes decoded, runs of `/` merged, `.` and `..` segments resolved, so `//api/` or
//! `/x/../login` cannot step around what `/api/` or `/login` is given. `+` is not a space in a path and stays.
//!
//! Hot path: runs for every routed request. A path without escapes or dot segments is copied as is; otherwise
//! the work is done in stack buffers that spill to the heap past 256 bytes.

use smallvec::SmallVec;

/// Where normalised paths (and the proxy's limit keys) are written: 128 bytes on the stack.
pub type PathBytes = SmallVec<[u8; 128]>;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends nginx's `$uri` for the raw `path`. Returns false where nginx answers 400 instead: an invalid `%`
/// escape, an escaped NUL, or `..` above the root (the best-effort result is appended all the same).
pub fn push_normalized_path(path: &[u8], out: &mut PathBytes) -> bool {
    let simple = !path.contains(&b'%')
        && !path.windows(2).any(|w| w == b"//" || w == b"/.")
        && path.first() == Some(&b'/');
    if simple {
        out.extend_from_slice(path);
        return true;
    }
    let mut valid = true;
    let mut decoded: SmallVec<[u8; 256]> = SmallVec::new();
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            ) {
                let c = h << 4 | l;
                valid &= c != 0;
                decoded.push(c);
                i += 3;
                continue;
            }
            valid = false;
        }
        decoded.push(b);
        i += 1;
    }
    // Resolve segments on the decoded path, keeping the result in `out` after `base`.
    let base = out.len();
    out.push(b'/');
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                // Drop the last segment, never the root slash.
                let tail = &out[base..];
                valid &= tail.len() > 1;
                let keep = tail[..tail.len() - 1]
                    .iter()
                    .rposition(|&b| b == b'/')
                    .map_or(1, |p| p + 1);
                out.truncate(base + keep);
            }
            seg => {
                out.extend_from_slice(seg);
                out.push(b'/');
            }
        }
    }
    // A trailing slash survives only where the path had one (or ended in a dot segment, as nginx).
    let ends_open = decoded.last() == Some(&b'/')
        || decoded.ends_with(b"/.")
        || decoded.ends_with(b"/..")
        || decoded.is_empty();
    if !ends_open && out.len() > base + 1 {
        out.pop();
    }
    valid
}
