use super::*;
use proptest::prelude::*;

/// A window with fixed counters; status counts per exact code, classes summed from them.
#[derive(Default)]
struct Window {
    requests: u64,
    statuses: Vec<(u16, u64)>,
}

impl Window {
    fn new(requests: u64, statuses: &[(u16, u64)]) -> Window {
        Window {
            requests,
            statuses: statuses.to_vec(),
        }
    }
}

impl WindowView for Window {
    fn requests(&self) -> u64 {
        self.requests
    }
    fn responses(&self) -> u64 {
        self.statuses.iter().map(|(_, n)| n).sum()
    }
    fn status(&self, sel: StatusSel) -> u64 {
        self.statuses
            .iter()
            .filter(|(code, _)| sel.matches(*code))
            .map(|(_, n)| n)
            .sum()
    }
}

fn parse(s: &str) -> Criteria {
    match Criteria::parse(s) {
        Ok(c) => c,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn err(s: &str) -> (usize, String) {
    match Criteria::parse(s) {
        Ok(c) => panic!("{s:?} should not parse, got {c:?}"),
        Err(e) => (e.column, e.kind.to_string()),
    }
}

fn cmp(term: Term, op: Op, value: u64) -> Criteria {
    Criteria::Cmp(Comparison { term, op, value })
}

#[test]
fn vendor_example_parses() {
    let c = parse(r#""status_ratio|404">60%&&"count">50"#);
    assert_eq!(
        c,
        Criteria::And(
            Box::new(cmp(Term::StatusRatio(StatusSel::Code(404)), Op::Gt, 60)),
            Box::new(cmp(Term::Count, Op::Gt, 50)),
        )
    );
    assert_eq!(c.to_string(), r#""status_ratio|404">60% && "count">50"#);
}

#[test]
fn operators_classes_and_whitespace() {
    for (text, op) in [
        (">", Op::Gt),
        (">=", Op::Ge),
        ("<", Op::Lt),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
    ] {
        let c = parse(&format!(" \t\"status_count|5xx\"  {text}\n 3 "));
        assert_eq!(c, cmp(Term::StatusCount(StatusSel::Class(5)), op, 3));
    }
    assert_eq!(
        parse(r#""status_ratio|4XX">0%"#),
        cmp(Term::StatusRatio(StatusSel::Class(4)), Op::Gt, 0)
    );
    assert_eq!(
        parse(r#""status_count|100">=1"#),
        cmp(Term::StatusCount(StatusSel::Code(100)), Op::Ge, 1)
    );
    assert_eq!(
        parse(r#""status_count|599">=1"#),
        cmp(Term::StatusCount(StatusSel::Code(599)), Op::Ge, 1)
    );
}

#[test]
fn and_binds_tighter_than_or() {
    let a = || cmp(Term::Count, Op::Gt, 1);
    let b = || cmp(Term::Count, Op::Gt, 2);
    let c = || cmp(Term::Count, Op::Gt, 3);
    let and = |l: Criteria, r: Criteria| Criteria::And(Box::new(l), Box::new(r));
    let or = |l: Criteria, r: Criteria| Criteria::Or(Box::new(l), Box::new(r));
    assert_eq!(
        parse(r#""count">1 || "count">2 && "count">3"#),
        or(a(), and(b(), c()))
    );
    assert_eq!(
        parse(r#""count">1 && "count">2 || "count">3"#),
        or(and(a(), b()), c())
    );
    assert_eq!(
        parse(r#"("count">1 || "count">2) && "count">3"#),
        and(or(a(), b()), c())
    );
    assert_eq!(
        parse(r#""count">1 && "count">2 && "count">3"#),
        and(and(a(), b()), c())
    );
    assert_eq!(parse(r#"((("count">1)))"#), a());
    // Parentheses that change the tree are printed back.
    assert_eq!(
        and(or(a(), b()), c()).to_string(),
        r#"("count">1 || "count">2) && "count">3"#
    );
    assert_eq!(
        and(a(), and(b(), c())).to_string(),
        r#""count">1 && ("count">2 && "count">3)"#
    );
    assert_eq!(
        or(a(), or(b(), c())).to_string(),
        r#""count">1 || ("count">2 || "count">3)"#
    );
}

#[test]
fn parse_errors_name_the_column_and_what_was_expected() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "",
            1,
            "criteria is empty; write a condition such as \"count\">50",
        ),
        ("   ", 1, "criteria is empty"),
        (
            r#""count">"#,
            9,
            "expected a whole number such as 50, found the end of the criteria",
        ),
        (
            r#""count" 50"#,
            9,
            "expected a comparison operator (>, >=, <, <=, ==, !=), found the number 50",
        ),
        (r#""count"=50"#, 8, "expected '==', found a single '='"),
        (
            r#""count">50 & "count"<9"#,
            12,
            "expected '&&', found a single '&'",
        ),
        (
            r#""count">50 | "count"<9"#,
            12,
            "expected '||', found a single '|'",
        ),
        (r#""count"!50"#, 8, "expected '!=', found a single '!'"),
        (
            r#""count">50 "count">9"#,
            12,
            "expected '&&', '||' or the end of the criteria, found \"count\"",
        ),
        (
            r#"("count">50"#,
            12,
            "expected '&&', '||' or ')', found the end of the criteria",
        ),
        (
            r#""count">50)"#,
            11,
            "expected '&&', '||' or the end of the criteria, found ')'",
        ),
        (
            r#"&& "count">1"#,
            1,
            "expected a term such as \"count\", or '(', found '&&'",
        ),
        (
            r#""count">1 &&"#,
            13,
            "expected a term such as \"count\", or '(', found the end of the criteria",
        ),
        (
            r#"count>50"#,
            1,
            "terms are written in double quotes: write \"count\"",
        ),
        (
            r#""count>50"#,
            1,
            "missing the closing '\"' of the term that starts here",
        ),
        (
            r#""Count">50"#,
            1,
            "unknown term \"Count\"; expected \"count\", \"status_count|CODE\"",
        ),
        (r#""count|404">50"#, 1, "unknown term \"count|404\""),
        (
            r#""status_count">50"#,
            1,
            "\"status_count\" needs a status code, as in \"status_count|404\"",
        ),
        (
            r#"  "status_ratio|4x">5%"#,
            17,
            "'4x' is not a status code; expected a code from 100 to 599",
        ),
        (r#""status_ratio|600">5%"#, 15, "'600' is not a status code"),
        (r#""status_ratio|099">5%"#, 15, "'099' is not a status code"),
        (r#""status_ratio|6xx">5%"#, 15, "'6xx' is not a status code"),
        (
            r#""status_ratio|404">60"#,
            20,
            "\"status_ratio|404\" is a ratio: compare it with a percentage such as 60%",
        ),
        (
            r#""status_ratio|404">101%"#,
            20,
            "a percentage must be between 0% and 100%; found 101%",
        ),
        (
            r#""count">50%"#,
            11,
            "\"count\" is a number of requests: compare it with a whole number such as 50",
        ),
        (
            r#""status_count|404">5 %"#,
            22,
            "\"status_count|404\" is a number of requests",
        ),
        (
            r#""status_ratio|404">0.6"#,
            21,
            "decimal numbers are not supported",
        ),
        (r#""count">99999999999999999999"#, 9, "number is too large"),
        (r#""count">-1"#, 9, "unexpected character '-'"),
        ("\"count\">1 ∧ \"count\">2", 11, "unexpected character '∧'"),
        ("é\"count\">1", 1, "unexpected character 'é'"),
        (
            r#""status_ratio|404">%"#,
            20,
            "expected a percentage such as 60%, found '%'",
        ),
    ];
    for (input, column, message) in cases {
        let (got_column, got_message) = err(input);
        assert_eq!(got_column, *column, "column for {input:?} ({got_message})");
        assert!(
            got_message.starts_with(message),
            "message for {input:?}: {got_message}"
        );
    }
    // The full error names the column first.
    let e = Criteria::parse(r#""count">"#).map(|_| ()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "column 9: expected a whole number such as 50, found the end of the criteria"
    );
}

#[test]
fn nesting_and_length_are_bounded() {
    let ok = format!(
        "{}\"count\">1{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    parse(&ok);
    let deep = format!(
        "{}\"count\">1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(
        err(&deep),
        (MAX_DEPTH + 1, ParseErrorKind::TooDeep.to_string())
    );
    let long = format!("\"count\">{}", "1".repeat(MAX_CRITERIA_LEN));
    assert_eq!(
        err(&long).1,
        ParseErrorKind::TooLong(MAX_CRITERIA_LEN + 8).to_string()
    );
}

#[test]
fn comparisons_truth_table() {
    // count = 50
    let w = Window::new(50, &[]);
    for (text, want) in [
        (r#""count">50"#, false),
        (r#""count">49"#, true),
        (r#""count">=50"#, true),
        (r#""count"<50"#, false),
        (r#""count"<=50"#, true),
        (r#""count"==50"#, true),
        (r#""count"!=50"#, false),
        (r#""count"!=51"#, true),
    ] {
        assert_eq!(parse(text).eval(&w), want, "{text}");
    }
}

#[test]
fn status_counts_and_ratios() {
    // 100 requests; responses: 60x404, 15x403, 20x200, 5x502 (100 responses).
    let w = Window::new(100, &[(404, 60), (403, 15), (200, 20), (502, 5)]);
    for (text, want) in [
        (r#""status_count|404"==60"#, true),
        (r#""status_count|4xx"==75"#, true),
        (r#""status_count|5xx">=5"#, true),
        (r#""status_count|500">0"#, false),
        (r#""status_ratio|404">60%"#, false),
        (r#""status_ratio|404">=60%"#, true),
        (r#""status_ratio|4xx">74%"#, true),
        (r#""status_ratio|4xx"==75%"#, true),
        (r#""status_ratio|2xx"<21%"#, true),
        (r#""status_ratio|1xx"==0%"#, true),
    ] {
        assert_eq!(parse(text).eval(&w), want, "{text}");
    }
    // 2 of 3 is 66.67%: exact arithmetic, no rounding to 67%.
    let w = Window::new(3, &[(404, 2), (200, 1)]);
    assert!(parse(r#""status_ratio|404">66%"#).eval(&w));
    assert!(!parse(r#""status_ratio|404">=67%"#).eval(&w));
    // No responses yet: every ratio reads 0%.
    let w = Window::new(10, &[]);
    assert!(!parse(r#""status_ratio|404">0%"#).eval(&w));
    assert!(parse(r#""status_ratio|404"==0%"#).eval(&w));
    // Large counters do not overflow.
    let w = Window::new(u64::MAX, &[(404, u64::MAX)]);
    assert!(parse(r#""status_ratio|404"==100% && "count"==18446744073709551615"#).eval(&w));
}

#[test]
fn and_or_truth_table() {
    let expr = parse(r#""status_ratio|404">60%&&"count">50 || "status_count|5xx">=10"#);
    // (ratio>60%, count>50, 5xx>=10) -> expected
    for (ratio_high, count_high, errors_high, want) in [
        (false, false, false, false),
        (true, false, false, false),
        (false, true, false, false),
        (true, true, false, true),
        (false, false, true, true),
        (true, false, true, true),
        (false, true, true, true),
        (true, true, true, true),
    ] {
        let requests = if count_high { 51 } else { 50 };
        let not_found = if ratio_high { 61 } else { 60 };
        let server_errors = if errors_high { 10 } else { 9 };
        // 100 responses: `not_found` 404s, `server_errors` 500s, the rest 200.
        let w = Window::new(
            requests,
            &[
                (404, not_found),
                (500, server_errors),
                (200, 100 - not_found - server_errors),
            ],
        );
        assert_eq!(
            expr.eval(&w),
            want,
            "ratio {ratio_high} count {count_high} 5xx {errors_high}"
        );
    }
}

#[test]
fn tracked_lists_each_selector_once() {
    let c = parse(
        r#""status_ratio|404">60% && "count">50 || "status_count|404">5 || "status_count|4xx">1"#,
    );
    assert_eq!(c.tracked(), vec![StatusSel::Code(404), StatusSel::Class(4)]);
    assert!(parse(r#""count">1"#).tracked().is_empty());
}

#[test]
fn explain_shows_the_values_that_decided() {
    let c = parse(r#""status_ratio|404">60%&&"count">50"#);
    let w = Window::new(52, &[(404, 39), (200, 13)]);
    assert!(c.eval(&w));
    assert_eq!(c.explain(&w), "status_ratio|404=75% count=52");
    // Only the true side of an ||.
    let c = parse(r#""count">100 || "status_count|5xx">=3 || "count">1000"#);
    let w = Window::new(20, &[(502, 3)]);
    assert_eq!(c.explain(&w), "status_count|5xx=3");
    // Not triggered: every term, each once.
    let c = parse(r#""count">100 || ("status_ratio|404">50% && "count">10)"#);
    let w = Window::new(5, &[(404, 2), (200, 1)]);
    assert!(!c.eval(&w));
    assert_eq!(c.explain(&w), "count=5 status_ratio|404=66.7%");
    assert_eq!(
        parse(r#""status_ratio|404">50%"#).explain(&Window::new(1, &[])),
        "status_ratio|404=0%"
    );
}

fn arb_sel() -> impl Strategy<Value = StatusSel> {
    prop_oneof![
        (100u16..=599).prop_map(StatusSel::Code),
        (1u8..=5).prop_map(StatusSel::Class)
    ]
}

fn arb_cmp() -> impl Strategy<Value = Criteria> {
    let op = prop_oneof![
        Just(Op::Gt),
        Just(Op::Ge),
        Just(Op::Lt),
        Just(Op::Le),
        Just(Op::Eq),
        Just(Op::Ne)
    ];
    let term_value = prop_oneof![
        any::<u64>().prop_map(|v| (Term::Count, v)),
        (arb_sel(), any::<u64>()).prop_map(|(s, v)| (Term::StatusCount(s), v)),
        (arb_sel(), 0u64..=100).prop_map(|(s, v)| (Term::StatusRatio(s), v)),
    ];
    (term_value, op).prop_map(|((term, value), op)| Criteria::Cmp(Comparison { term, op, value }))
}

fn arb_criteria() -> impl Strategy<Value = Criteria> {
    // Depth 4 and at most 16 leaves keep the printed form under MAX_CRITERIA_LEN.
    arb_cmp().prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(l, r)| Criteria::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner).prop_map(|(l, r)| Criteria::Or(Box::new(l), Box::new(r))),
        ]
    })
}

proptest! {
    #[test]
    fn print_then_parse_gives_the_same_tree(c in arb_criteria()) {
        let printed = c.to_string();
        prop_assert_eq!(Criteria::parse(&printed), Ok(c), "{}", printed);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = Criteria::parse(&s);
    }

    #[test]
    fn near_miss_strings_never_panic(s in r#"[ "()&|<>=!%0-9a-z_|x]{0,60}"#) {
        if let Err(e) = Criteria::parse(&s) {
            // The column points into the input or just past it.
            prop_assert!(e.column >= 1 && e.column <= s.chars().count() + 1, "{} for {:?}", e, s);
        }
    }

    #[test]
    fn status_ratio_matches_float_arithmetic(matching in 0u64..1000, extra in 0u64..1000, pct in 0u64..=100) {
        let w = Window::new(0, &[(404, matching), (200, extra)]);
        let c = cmp(Term::StatusRatio(StatusSel::Code(404)), Op::Ge, pct);
        let responses = matching + extra;
        let want = if responses == 0 { pct == 0 } else { matching * 100 >= pct * responses };
        prop_assert_eq!(c.eval(&w), want);
    }
}
