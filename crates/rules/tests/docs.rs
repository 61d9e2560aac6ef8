//! docs/protection.md shows real behaviour: its criteria examples parse, its error table is what the parser
//! says, and its preset criteria are the presets'.

use edgeguard_rules::{Criteria, EMERGENCY_CRITERIA, NORMAL_CRITERIA};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protection.md");
    std::fs::read_to_string(path).expect("docs/protection.md is readable")
}

/// The code spans of each table row in the section under `heading`, with `\|` unescaped.
fn table(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let section = doc.split(heading).nth(1).expect("heading present");
    let section = section.split("\n#").next().unwrap_or(section);
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|--") && !l.starts_with("| criteria"))
        .map(|l| {
            let l = l.replace("\\|", "\u{1}");
            l.split('|')
                .filter(|cell| !cell.trim().is_empty())
                .map(|cell| cell.trim().trim_matches('`').replace('\u{1}', "|"))
                .collect()
        })
        .collect()
}

#[test]
fn error_table_matches_the_parser() {
    let rows = table(&doc(), "### Error messages");
    assert!(rows.len() > 10);
    for row in rows {
        let input = if row[0] == "(empty)" {
            ""
        } else {
            row[0].as_str()
        };
        let err = Criteria::parse(input).expect_err(input);
        assert_eq!(err.to_string(), row[1], "for {input:?}");
    }
}

#[test]
fn examples_parse() {
    let rows = table(&doc(), "### Examples");
    assert!(rows.len() >= 4);
    for row in rows {
        Criteria::parse(&row[0]).unwrap_or_else(|e| panic!("{}: {e}", row[0]));
    }
}

#[test]
fn preset_criteria_are_documented() {
    let doc = doc();
    assert!(doc.contains(&format!("Criteria: `{NORMAL_CRITERIA}`")));
    assert!(doc.contains(&format!("Criteria: `{EMERGENCY_CRITERIA}`")));
}
