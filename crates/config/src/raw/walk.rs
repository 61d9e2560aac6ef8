//! The walk over `toml`'s spanned tree: typed getters that report a wrong type or an unknown key with its dotted
//! path and span, and carry on, so one run names every mistake.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{S, Span, StrOrInt};
use crate::error::Sink;

/// One table of the document, with the path used in error keys.
pub(super) struct Tbl<'t, 'i> {
    pub(super) path: String,
    pub(super) span: Span,
    pub(super) table: &'t DeTable<'i>,
}

impl<'t, 'i> Tbl<'t, 'i> {
    pub(super) fn get(&self, key: &str) -> Option<&'t S<DeValue<'i>>> {
        self.table.get(key)
    }

    pub(super) fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub(super) fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

pub(super) fn contains(span: &Span, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

pub(super) fn check_keys(sink: &mut Sink<'_>, t: &Tbl<'_, '_>, known: &[&str]) {
    for (k, _) in t.table.iter() {
        let name: &str = k.get_ref();
        if !known.contains(&name) {
            let message = unknown_key(sink, &t.path, name, known);
            sink.err(t.key(name), &k.span(), message);
        }
    }
}

/// The message for an unknown key; a close known key is suggested and marked covered in `sink`, so its
/// absence is not reported a second time.
pub(super) fn unknown_key(sink: &mut Sink<'_>, path: &str, name: &str, known: &[&str]) -> String {
    let close = known
        .iter()
        .filter(|k| edit_distance(name, k) <= 2)
        .min_by_key(|k| edit_distance(name, k));
    match close {
        Some(k) => {
            sink.covered.push(join(path, k));
            format!("unknown key {name:?} (did you mean {k:?}?)")
        }
        None => format!("unknown key {name:?}; expected one of {}", known.join(", ")),
    }
}

/// Levenshtein distance, for "did you mean" hints on short key names.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(super) fn sub_table<'t, 'i>(
    sink: &mut Sink<'_>,
    t: &Tbl<'t, 'i>,
    key: &str,
) -> Option<Tbl<'t, 'i>> {
    let v = t.get(key)?;
    match v.get_ref() {
        DeValue::Table(table) => Some(Tbl {
            path: t.key(key),
            span: v.span(),
            table,
        }),
        other => {
            sink.err(
                t.key(key),
                &v.span(),
                format!("expected a table, found {}", type_name(other)),
            );
            None
        }
    }
}

/// An array of tables, `[[key]]` sections or an inline `[{ ... }, ...]`; `None` when the key is absent.
pub(super) fn array_of_tables<'t, 'i, R>(
    sink: &mut Sink<'_>,
    t: &Tbl<'t, 'i>,
    key: &str,
    mut f: impl FnMut(&mut Sink<'_>, Tbl<'t, 'i>) -> R,
) -> Option<Vec<R>> {
    let v = t.get(key)?;
    let path = t.key(key);
    let DeValue::Array(items) = v.get_ref() else {
        sink.err(
            &path,
            &v.span(),
            format!(
                "expected an array of tables, found {}",
                type_name(v.get_ref())
            ),
        );
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match item.get_ref() {
            DeValue::Table(table) => out.push(f(
                sink,
                Tbl {
                    path: item_path,
                    span: item.span(),
                    table,
                },
            )),
            other => sink.err(
                item_path,
                &item.span(),
                format!("expected a table, found {}", type_name(other)),
            ),
        }
    }
    Some(out)
}

pub(super) fn string(sink: &mut Sink<'_>, t: &Tbl<'_, '_>, key: &str) -> Option<S<String>> {
    let v = t.get(key)?;
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), s.to_string())),
        other => {
            sink.err(
                t.key(key),
                &v.span(),
                format!("expected a string, found {}", type_name(other)),
            );
            None
        }
    }
}

pub(super) fn boolean(sink: &mut Sink<'_>, t: &Tbl<'_, '_>, key: &str) -> Option<S<bool>> {
    let v = t.get(key)?;
    match v.get_ref() {
        DeValue::Boolean(b) => Some(Spanned::new(v.span(), *b)),
        other => {
            sink.err(
                t.key(key),
                &v.span(),
                format!("expected true or false, found {}", type_name(other)),
            );
            None
        }
    }
}

pub(super) fn integer(sink: &mut Sink<'_>, t: &Tbl<'_, '_>, key: &str) -> Option<S<i64>> {
    let v = t.get(key)?;
    match v.get_ref() {
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(Spanned::new(v.span(), n)),
            Err(_) => {
                sink.err(t.key(key), &v.span(), "integer out of range");
                None
            }
        },
        other => {
            sink.err(
                t.key(key),
                &v.span(),
                format!("expected an integer, found {}", type_name(other)),
            );
            None
        }
    }
}

pub(super) fn str_or_int(sink: &mut Sink<'_>, t: &Tbl<'_, '_>, key: &str) -> Option<S<StrOrInt>> {
    let v = t.get(key)?;
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), StrOrInt::Str(s.to_string()))),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(Spanned::new(v.span(), StrOrInt::Int(n))),
            Err(_) => {
                sink.err(t.key(key), &v.span(), "integer out of range");
                None
            }
        },
        other => {
            sink.err(
                t.key(key),
                &v.span(),
                format!(
                    "expected a string with a unit or an integer, found {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}

pub(super) fn string_list(
    sink: &mut Sink<'_>,
    t: &Tbl<'_, '_>,
    key: &str,
) -> Option<S<Vec<S<String>>>> {
    let v = t.get(key)?;
    let DeValue::Array(items) = v.get_ref() else {
        sink.err(
            t.key(key),
            &v.span(),
            format!(
                "expected an array of strings, found {}",
                type_name(v.get_ref())
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.get_ref() {
            DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
            other => sink.err(
                format!("{}[{i}]", t.key(key)),
                &item.span(),
                format!("expected a string, found {}", type_name(other)),
            ),
        }
    }
    Some(Spanned::new(v.span(), out))
}

/// A string or an array of strings (`redis_url = "redis://a"` or `["redis://a", "redis://b"]`), as a list.
pub(super) fn string_or_list(
    sink: &mut Sink<'_>,
    t: &Tbl<'_, '_>,
    key: &str,
) -> Option<S<Vec<S<String>>>> {
    let v = t.get(key)?;
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(
            v.span(),
            vec![Spanned::new(v.span(), s.to_string())],
        )),
        DeValue::Array(_) => string_list(sink, t, key),
        other => {
            sink.err(
                t.key(key),
                &v.span(),
                format!(
                    "expected a string or an array of strings, found {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}
