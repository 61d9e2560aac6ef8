//! The layout rules of the workspace, checked on the source tree: no module of a crate imports a module that
//! imports it back (directly or around a longer circle), and no source file outside tests passes 600 lines.
//!
//! A module's imports are the `crate::a::b` and `super::` paths its file names; `crate::a::b::C` counts as an
//! edge to the longest module prefix that exists (`a::b` if `a/b.rs` exists, else `a`). A parent module is
//! allowed to use its own children (that is how Rust modules are declared), so edges from a module to its
//! descendants are not circles; edges from a child to an ancestor are, when the ancestor also reaches it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

/// Violations being worked off, each to be deleted with the change that removes it; nothing may be added.
const KNOWN_CIRCLES: &[&str] = &[];
const KNOWN_LONG: &[&str] = &[];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` -> `["a", "b"]`; `src/lib.rs`, `src/main.rs` -> `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

fn is_test_file(m: &[String]) -> bool {
    m.last()
        .is_some_and(|l| l == "tests" || l.ends_with("_tests"))
}

/// Paths named in `use` items and in expressions: every `crate::x::y` and `super::x` sequence of the text,
/// comments and string literals stripped first so prose does not count.
fn referenced_paths(text: &str) -> Vec<(bool, usize, Vec<String>)> {
    let code = strip_comments_and_strings(text);
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let mut supers = 0;
            let mut j = i;
            let from_crate = rest.starts_with("crate::");
            if from_crate {
                j += "crate::".len();
            }
            while code[j..].starts_with("super::") {
                supers += 1;
                j += "super::".len();
            }
            let mut segs = Vec::new();
            loop {
                let seg: String = code[j..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if seg.is_empty() {
                    break;
                }
                j += seg.len();
                segs.push(seg);
                if code[j..].starts_with("::") {
                    j += 2;
                } else {
                    break;
                }
            }
            // `use crate::{a, b::c}`: each group member is its own path.
            if code[j..].starts_with('{') {
                let end = matching_brace(&code[j..]).map_or(code.len(), |e| j + e);
                for member in code[j + 1..end.saturating_sub(1).max(j + 1)].split(',') {
                    let mut s = segs.clone();
                    s.extend(
                        member
                            .trim()
                            .split("::")
                            .map(|x| x.trim().trim_start_matches('{').trim().to_owned())
                            .filter(|x| {
                                !x.is_empty()
                                    && x.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            }),
                    );
                    out.push((from_crate, supers, s));
                }
                i = end;
                continue;
            }
            out.push((from_crate, supers, segs));
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0;
    for (k, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn strip_comments_and_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

struct Crate {
    name: String,
    modules: BTreeMap<Vec<String>, PathBuf>,
}

fn crates() -> Vec<Crate> {
    let mut out = Vec::new();
    let root = workspace_root().join("crates");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("src").is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let src = dir.join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules = files
            .into_iter()
            .map(|f| (module_path(&src, &f), f))
            .collect();
        out.push(Crate {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            modules,
        });
    }
    out
}

/// The module an import lands in: the longest prefix of the absolute path that is a module file.
fn resolve(
    c: &Crate,
    from: &[String],
    (from_crate, supers, segs): &(bool, usize, Vec<String>),
) -> Option<Vec<String>> {
    let mut base: Vec<String> = if *from_crate {
        Vec::new()
    } else {
        from.to_vec()
    };
    for _ in 0..*supers {
        base.pop()?;
    }
    let mut full = base.clone();
    full.extend(segs.iter().cloned());
    (base.len()..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|p| c.modules.contains_key(p))
}

fn edges(c: &Crate) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut g: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (m, file) in &c.modules {
        let text = fs::read_to_string(file).expect("read source");
        // `#[cfg(test)] mod tests` blocks inside a file are tests; their imports do not count.
        let text = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or("");
        for r in referenced_paths(text) {
            if let Some(to) = resolve(c, m, &r)
                && &to != m
                && !to.starts_with(m)
                && !is_test_file(&to)
                && !is_test_file(m)
            {
                g.entry(m.clone()).or_default().insert(to);
            }
        }
    }
    g
}

/// The strongly connected components of more than one module: every set of modules that reach each other.
fn circles(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    let nodes: BTreeSet<&Vec<String>> = g.keys().chain(g.values().flatten()).collect();
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for m in g.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) {
            continue;
        }
        let comp: Vec<Vec<String>> = nodes
            .iter()
            .filter(|m| *m == n || (reaches[*n].contains(**m) && reaches[**m].contains(*n)))
            .map(|m| (*m).clone())
            .collect();
        for m in &comp {
            done.insert(m.clone());
        }
        if comp.len() > 1 {
            out.push(comp);
        }
    }
    out
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_owned()
    } else {
        m.join("::")
    }
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let mut found = Vec::new();
    for c in crates() {
        for comp in circles(&edges(&c)) {
            let names: Vec<String> = comp.iter().map(|m| show(m)).collect();
            let line = format!("{}: {{{}}}", c.name, names.join(", "));
            if !KNOWN_CIRCLES.contains(&line.as_str()) {
                found.push(line);
            }
        }
    }
    assert!(
        found.is_empty(),
        "modules that import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_passes_600_lines() {
    let mut long = Vec::new();
    for c in crates() {
        for (m, file) in &c.modules {
            if is_test_file(m) {
                continue;
            }
            let n = fs::read_to_string(file).expect("read").lines().count();
            let rel = file.strip_prefix(workspace_root()).unwrap_or(file);
            let rel = rel.to_string_lossy().replace('\\', "/");
            if n > MAX_LINES && !KNOWN_LONG.contains(&rel.as_str()) {
                long.push(format!("{rel} ({n} lines)"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle() {
    let text = "use crate::a::X;\nfn f() { super::b::g(); }\n";
    let paths = referenced_paths(text);
    assert_eq!(paths[0], (true, 0, vec!["a".to_owned(), "X".to_owned()]));
    assert_eq!(paths[1], (false, 1, vec!["b".to_owned(), "g".to_owned()]));
    let mut g = BTreeMap::new();
    let a = vec!["a".to_owned()];
    let b = vec!["b".to_owned()];
    g.insert(a.clone(), BTreeSet::from([b.clone()]));
    g.insert(b.clone(), BTreeSet::from([a.clone()]));
    assert_eq!(circles(&g), vec![vec![a.clone(), b.clone()]]);
    g.remove(&b);
    assert!(circles(&g).is_empty());
}

/// The `[dependencies]` names of a crate's manifest (not dev-dependencies).
fn normal_dependencies(krate: &str) -> Vec<String> {
    let text = fs::read_to_string(
        workspace_root()
            .join("crates")
            .join(krate)
            .join("Cargo.toml"),
    )
    .expect("manifest");
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]"
                || line.starts_with("[target.") && line.ends_with(".dependencies]");
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once(['=', '.']) {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                out.push(name.to_owned());
            }
        }
    }
    out
}

#[test]
fn the_protection_engine_links_no_http_stack_and_no_runtime() {
    // The engine and every crate of ours it depends on: `edgeguard replay` and rule tests need none of these.
    let mut todo = vec!["protect".to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(k) = todo.pop() {
        if !seen.insert(k.clone()) {
            continue;
        }
        for d in normal_dependencies(&k) {
            assert!(
                !matches!(d.as_str(), "hyper" | "hyper-util" | "tokio" | "http" | "h2"),
                "crates/{k} depends on {d}, which the protection engine must not link"
            );
            if let Some(ours) = d.strip_prefix("edgeguard-") {
                todo.push(ours.to_owned());
            }
        }
    }
    assert!(seen.contains("limit") && seen.contains("rules"), "{seen:?}");
}
