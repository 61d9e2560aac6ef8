//! The criteria language of custom rules: `"status_ratio|404">60% && "count">50`.
//!
//! A criteria string is parsed once, when the rule is compiled, into a small tree ([`Criteria`]); the hot path
//! only evaluates that tree against a window of counters ([`WindowView`]). The grammar and the error messages
//! are documented in `docs/protection.md`.

mod parse;

use std::fmt::{self, Write as _};
use std::str::FromStr;

pub use parse::{MAX_CRITERIA_LEN, MAX_DEPTH, ParseError, ParseErrorKind};

/// Which response statuses a `status_count` / `status_ratio` term counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusSel {
    /// One exact status code, 100..=599.
    Code(u16),
    /// A class: `4` stands for `4xx`. 1..=5.
    Class(u8),
}

impl StatusSel {
    /// Whether a response with `status` falls under this selector.
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusSel::Code(code) => code == status,
            StatusSel::Class(class) => status / 100 == u16::from(class),
        }
    }
}

impl fmt::Display for StatusSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusSel::Code(code) => write!(f, "{code}"),
            StatusSel::Class(class) => write!(f, "{class}xx"),
        }
    }
}

/// The counters of one object's window that a criteria expression reads. Implemented by the counting engine.
pub trait WindowView {
    /// Requests counted in the window (the `count` term).
    fn requests(&self) -> u64;
    /// Responses counted in the window: the denominator of `status_ratio`.
    fn responses(&self) -> u64;
    /// Responses in the window whose status falls under `sel`. Only selectors from
    /// [`Criteria::tracked`] are asked for.
    fn status(&self, sel: StatusSel) -> u64;
}

/// What a comparison reads from the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Term {
    /// `"count"`: requests in the window.
    Count,
    /// `"status_count|CODE"`: responses with that status (or class).
    StatusCount(StatusSel),
    /// `"status_ratio|CODE"`: those responses as a share of all responses, in percent.
    StatusRatio(StatusSel),
}

impl Term {
    /// The term's current value: a count, or for `status_ratio` the exact ratio as `(numerator, denominator)`
    /// of a percentage (denominator 0 means no responses yet, read as 0%).
    fn read(self, view: &impl WindowView) -> Reading {
        match self {
            Term::Count => Reading::Count(view.requests()),
            Term::StatusCount(sel) => Reading::Count(view.status(sel)),
            Term::StatusRatio(sel) => Reading::Ratio {
                matching: view.status(sel),
                responses: view.responses(),
            },
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Count => f.write_str("count"),
            Term::StatusCount(sel) => write!(f, "status_count|{sel}"),
            Term::StatusRatio(sel) => write!(f, "status_ratio|{sel}"),
        }
    }
}

enum Reading {
    Count(u64),
    Ratio { matching: u64, responses: u64 },
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reading::Count(n) => write!(f, "{n}"),
            Reading::Ratio { responses: 0, .. } => f.write_str("0%"),
            Reading::Ratio {
                matching,
                responses,
            } => {
                // Tenths of a percent, rounded half up, so the log shows 66.7% rather than a truncated 66%.
                let tenths = (u128::from(matching) * 2000 + u128::from(responses))
                    / (2 * u128::from(responses));
                if tenths % 10 == 0 {
                    write!(f, "{}%", tenths / 10)
                } else {
                    write!(f, "{}.{}%", tenths / 10, tenths % 10)
                }
            }
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn apply<T: Ord>(self, left: T, right: T) -> bool {
        match self {
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// `TERM OP VALUE`. For `status_ratio` the value is a whole percentage (0..=100); for the other terms a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Comparison {
    pub term: Term,
    pub op: Op,
    pub value: u64,
}

impl Comparison {
    pub fn eval(&self, view: &impl WindowView) -> bool {
        match self.term.read(view) {
            Reading::Count(n) => self.op.apply(n, self.value),
            // No responses yet reads as 0%: a fresh window must not look like a 100% error rate.
            Reading::Ratio { responses: 0, .. } => self.op.apply(0, self.value),
            // matching/responses OP value/100, cross-multiplied so the comparison is exact.
            Reading::Ratio {
                matching,
                responses,
            } => self.op.apply(
                u128::from(matching) * 100,
                u128::from(self.value) * u128::from(responses),
            ),
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"{}{}", self.term, self.op.as_str(), self.value)?;
        if matches!(self.term, Term::StatusRatio(_)) {
            f.write_char('%')?;
        }
        Ok(())
    }
}

/// A parsed criteria expression. `a && b && c` parses as `And(And(a, b), c)`; `&&` binds tighter than `||`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Criteria {
    Cmp(Comparison),
    And(Box<Criteria>, Box<Criteria>),
    Or(Box<Criteria>, Box<Criteria>),
}

impl Criteria {
    /// Parses a criteria string; the error carries the 1-based column (in characters) and what was expected.
    pub fn parse(input: &str) -> Result<Criteria, ParseError> {
        parse::parse(input)
    }

    /// Whether the window's counters satisfy the expression.
    ///
    /// Hot path (once per counted request): no allocation, recursion bounded by [`MAX_DEPTH`].
    pub fn eval(&self, view: &impl WindowView) -> bool {
        match self {
            Criteria::Cmp(cmp) => cmp.eval(view),
            Criteria::And(left, right) => left.eval(view) && right.eval(view),
            Criteria::Or(left, right) => left.eval(view) || right.eval(view),
        }
    }

    /// The status selectors the window must count for this expression, each once, in order of appearance.
    pub fn tracked(&self) -> Vec<StatusSel> {
        let mut out = Vec::new();
        self.for_each_cmp(&mut |cmp| {
            if let Term::StatusCount(sel) | Term::StatusRatio(sel) = cmp.term
                && !out.contains(&sel)
            {
                out.push(sel);
            }
        });
        out
    }

    /// The values behind a verdict, for the activity log: `status_ratio|404=75% count=52`.
    ///
    /// When the expression is true, only the terms of the comparisons that made it true are listed (the true
    /// side of an `||`); otherwise every term, so an operator can see how far the window was from triggering.
    /// Each term appears once. Allocates: call it when a rule triggers, not per request.
    pub fn explain(&self, view: &impl WindowView) -> String {
        let mut terms = Vec::new();
        if self.eval(view) {
            self.witness(view, &mut terms);
        } else {
            self.for_each_cmp(&mut |cmp| terms.push(cmp.term));
        }
        let mut seen: Vec<Term> = Vec::with_capacity(terms.len());
        let mut out = String::new();
        for term in terms {
            if seen.contains(&term) {
                continue;
            }
            seen.push(term);
            if !out.is_empty() {
                out.push(' ');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{term}={}", term.read(view));
        }
        out
    }

    /// Pushes the terms of the comparisons that make a true expression true.
    fn witness(&self, view: &impl WindowView, out: &mut Vec<Term>) {
        match self {
            Criteria::Cmp(cmp) => out.push(cmp.term),
            Criteria::And(left, right) => {
                left.witness(view, out);
                right.witness(view, out);
            }
            Criteria::Or(left, right) => {
                for side in [left, right] {
                    if side.eval(view) {
                        side.witness(view, out);
                    }
                }
            }
        }
    }

    fn for_each_cmp(&self, f: &mut impl FnMut(&Comparison)) {
        match self {
            Criteria::Cmp(cmp) => f(cmp),
            Criteria::And(left, right) | Criteria::Or(left, right) => {
                left.for_each_cmp(f);
                right.for_each_cmp(f);
            }
        }
    }

    fn fmt_child(&self, f: &mut fmt::Formatter<'_>, parens: bool) -> fmt::Result {
        if parens {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

/// The canonical form: comparisons without spaces, ` && ` and ` || ` with spaces, and parentheses exactly where
/// the tree needs them, so that printing and parsing again gives the same tree.
impl fmt::Display for Criteria {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Criteria::Cmp(cmp) => write!(f, "{cmp}"),
            Criteria::And(left, right) => {
                left.fmt_child(f, matches!(**left, Criteria::Or(..)))?;
                f.write_str(" && ")?;
                right.fmt_child(f, !matches!(**right, Criteria::Cmp(_)))
            }
            Criteria::Or(left, right) => {
                left.fmt_child(f, false)?;
                f.write_str(" || ")?;
                right.fmt_child(f, matches!(**right, Criteria::Or(..)))
            }
        }
    }
}

impl FromStr for Criteria {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Criteria::parse(s)
    }
}

#[cfg(test)]
mod tests;
