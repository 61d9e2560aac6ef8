//! A changed configuration written into the operator's own file, keeping its comments, layout and key order:
//! only the settings whose value changed are rewritten, in place.
//!
//! Both the file's own configuration and the new one are written in canonical form ([`to_toml`]) and compared
//! setting by setting; a setting that differs is then set in the operator's document (`toml_edit`), keeping the
//! comments around it. A setting the canonical form spells out but the file leaves to its default is added
//! only when it changed. Entries of `[[domain]]`, `[[limit_req_zone]]`, `[[limit_conn_zone]]`,
//! `[[domain.location]]` and `[[domain.rate_limiting.rules]]` are matched by `name` (`path` for locations), so
//! a removed domain takes its comments with it and a new one is appended in canonical form.

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

use crate::model::Config;
use crate::to_toml::to_toml;

/// The text of `original` edited so that it reads back as `config`, or `None` when it cannot be done in place:
/// `original` does not parse as a configuration, or the edited text would not read back equal (entries
/// reordered, say). The caller then writes [`to_toml`] instead.
///
/// Neither text consults the environment: `admin.token` is what `original` and `config` hold.
pub fn edit_toml(original: &str, config: &Config) -> Option<String> {
    let no_env = |_: &str| None;
    let before = crate::parse_with_env(original, no_env).ok()?;
    let mut doc: DocumentMut = original.parse().ok()?;
    let old: DocumentMut = to_toml(&before).parse().ok()?;
    let new: DocumentMut = to_toml(config).parse().ok()?;
    sync_table(doc.as_table_mut(), old.as_table(), new.as_table());
    let out = doc.to_string();
    // The edit is checked rather than trusted: whatever it missed, the caller falls back to the canonical file.
    (crate::parse_with_env(&out, no_env).ok()? == *config).then_some(out)
}

/// Makes `orig` (the operator's table) carry what changed from `old` to `new` (canonical tables).
fn sync_table(orig: &mut dyn TableLike, old: &Table, new: &Table) {
    for (key, item) in new.iter() {
        let before = old.get(key);
        if before.is_some_and(|b| same(b, item)) {
            continue;
        }
        match item {
            Item::Table(table) => {
                let empty = Table::new();
                let old_table = before.and_then(Item::as_table).unwrap_or(&empty);
                if let Some(t) = orig.get_mut(key).and_then(Item::as_table_like_mut) {
                    sync_table(t, old_table, table);
                } else {
                    // Only the settings that differ from the file's (defaults) go into the new table.
                    let mut fresh = Table::new();
                    sync_table(&mut fresh, old_table, table);
                    if !fresh.is_empty() {
                        orig.insert(key, Item::Table(fresh));
                    }
                }
            }
            Item::ArrayOfTables(tables) => {
                let old_tables = before.and_then(Item::as_array_of_tables);
                match orig.get_mut(key).and_then(Item::as_array_of_tables_mut) {
                    Some(a) => sync_array(a, old_tables, tables),
                    None => {
                        orig.insert(key, unplaced(item.clone()));
                    }
                }
            }
            Item::Value(value) => match orig.get_mut(key) {
                Some(Item::Value(current)) => {
                    // The comment after the value and the spacing around it stay.
                    let decor = current.decor().clone();
                    *current = value.clone();
                    *current.decor_mut() = decor;
                }
                _ => {
                    let mut value = value.clone();
                    value.decor_mut().clear();
                    orig.insert(key, Item::Value(value));
                }
            },
            Item::None => {}
        }
    }
    for (key, _) in old.iter() {
        if !new.contains_key(key) {
            orig.remove(key);
        }
    }
}

/// What identifies an entry of a list of tables: its `name`, or its `path` for a location.
fn id(t: &Table) -> Option<&str> {
    t.get("name")
        .or_else(|| t.get("path"))
        .and_then(Item::as_str)
}

fn same_id(a: Option<&str>, b: Option<&str>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// Rebuilds `orig` in the order of `new`: each entry that existed is the operator's table with its changes,
/// each new one is canonical, and entries no longer in `new` are dropped with their comments.
fn sync_array(orig: &mut ArrayOfTables, old: Option<&ArrayOfTables>, new: &ArrayOfTables) {
    let old: Vec<&Table> = old.map(|a| a.iter().collect()).unwrap_or_default();
    let mut old_used = vec![false; old.len()];
    let mut orig_used = vec![false; orig.len()];
    let mut out = ArrayOfTables::new();
    for (j, table) in new.iter().enumerate() {
        let want = id(table);
        let by_id = (0..old.len()).find(|&i| !old_used[i] && same_id(id(old[i]), want));
        // A renamed entry keeps its place (and its comments) when nothing else claims it.
        let renamed = || {
            (j < old.len() && !old_used[j] && !new.iter().any(|t| same_id(id(t), id(old[j]))))
                .then_some(j)
        };
        let Some(i) = by_id.or_else(renamed) else {
            out.push(unplaced_table(table.clone()));
            continue;
        };
        old_used[i] = true;
        let found = (0..orig.len())
            .find(|&k| !orig_used[k] && orig.get(k).is_some_and(|t| same_id(id(t), id(old[i]))));
        match found.and_then(|k| Some((k, orig.get(k)?.clone()))) {
            Some((k, mut mine)) => {
                orig_used[k] = true;
                sync_table(&mut mine, old[i], table);
                out.push(mine);
            }
            None => out.push(unplaced_table(table.clone())),
        }
    }
    *orig = out;
}

/// Whether two canonical items hold the same settings.
fn same(a: &Item, b: &Item) -> bool {
    match (a, b) {
        (Item::Value(x), Item::Value(y)) => bare(x) == bare(y),
        (Item::Table(x), Item::Table(y)) => same_table(x, y),
        (Item::ArrayOfTables(x), Item::ArrayOfTables(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same_table(p, q))
        }
        _ => false,
    }
}

fn same_table(x: &Table, y: &Table) -> bool {
    x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
}

fn bare(v: &Value) -> String {
    let mut v = v.clone();
    v.decor_mut().clear();
    v.to_string()
}

/// A canonical table for the operator's document: without the canonical document's positions, so it is
/// written right after the table before it instead of at a place of that other document.
fn unplaced_table(mut t: Table) -> Table {
    t.set_position(None);
    for (_, item) in t.iter_mut() {
        let owned = std::mem::take(item);
        *item = unplaced(owned);
    }
    t
}

fn unplaced(item: Item) -> Item {
    match item {
        Item::Table(t) => Item::Table(unplaced_table(t)),
        Item::ArrayOfTables(a) => {
            let mut out = ArrayOfTables::new();
            for t in a.into_iter() {
                out.push(unplaced_table(t));
            }
            Item::ArrayOfTables(out)
        }
        other => other,
    }
}
