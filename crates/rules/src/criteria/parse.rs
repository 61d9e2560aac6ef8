//! Lexer and recursive-descent parser of the criteria language.
//!
//! Runs when a rule is compiled (config load, admin API), never per request. Errors name the 1-based column, in
//! characters, and what was expected there, because they are shown to an operator next to the field.

use super::{Comparison, Criteria, Op, StatusSel, Term};

/// Longest accepted criteria, in characters. Bounds parse time and the depth of `&&`/`||` chains.
pub const MAX_CRITERIA_LEN: usize = 1000;
/// Deepest accepted nesting of parentheses. Bounds the parser's recursion.
pub const MAX_DEPTH: usize = 32;

/// A criteria string that does not parse: where (1-based column, in characters) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {kind}")]
pub struct ParseError {
    pub column: usize,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("criteria is empty; write a condition such as \"count\">50")]
    Empty,
    #[error("criteria is too long ({0} characters; at most {MAX_CRITERIA_LEN})")]
    TooLong(usize),
    #[error("unexpected character '{0}'")]
    UnexpectedChar(char),
    #[error("expected {expected}, found {found}")]
    Expected {
        expected: &'static str,
        found: String,
    },
    #[error("terms are written in double quotes: write \"{0}\"")]
    UnquotedTerm(String),
    #[error("missing the closing '\"' of the term that starts here")]
    UnterminatedQuote,
    #[error(
        "unknown term \"{0}\"; expected \"count\", \"status_count|CODE\" or \"status_ratio|CODE\""
    )]
    UnknownTerm(String),
    #[error("\"{0}\" needs a status code, as in \"{0}|404\" or \"{0}|4xx\"")]
    MissingCode(&'static str),
    #[error(
        "'{0}' is not a status code; expected a code from 100 to 599 or a class from 1xx to 5xx"
    )]
    BadStatus(String),
    #[error("number is too large (at most {})", u64::MAX)]
    NumberTooLarge,
    #[error(
        "decimal numbers are not supported; write a whole number, or a whole percentage such as 60%"
    )]
    Decimal,
    #[error("a percentage must be between 0% and 100%; found {0}%")]
    PercentOutOfRange(u64),
    #[error(
        "\"{0}\" is a number of requests: compare it with a whole number such as 50, not a percentage"
    )]
    PercentNotAllowed(String),
    #[error("\"{0}\" is a ratio: compare it with a percentage such as 60%")]
    PercentRequired(String),
    #[error("parentheses are nested too deeply (at most {MAX_DEPTH} levels)")]
    TooDeep,
}

pub(super) fn parse(input: &str) -> Result<Criteria, ParseError> {
    let len = input.chars().count();
    if len > MAX_CRITERIA_LEN {
        return Err(ParseError {
            column: MAX_CRITERIA_LEN + 1,
            kind: ParseErrorKind::TooLong(len),
        });
    }
    let mut parser = Parser {
        lexer: Lexer {
            input,
            pos: 0,
            col: 1,
        },
        peeked: None,
    };
    if parser.peek()?.tok == Tok::End {
        return Err(ParseError {
            column: 1,
            kind: ParseErrorKind::Empty,
        });
    }
    let expr = parser.or_expr(0)?;
    let next = parser.next()?;
    if next.tok != Tok::End {
        return Err(next.expected("'&&', '||' or the end of the criteria"));
    }
    Ok(expr)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Term(Term),
    Word(String),
    Number(u64),
    Percent,
    Op(Op),
    And,
    Or,
    LParen,
    RParen,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
}

impl Token {
    fn expected(&self, expected: &'static str) -> ParseError {
        let found = match &self.tok {
            Tok::Term(term) => format!("\"{term}\""),
            Tok::Word(word) => format!("'{word}'"),
            Tok::Number(n) => format!("the number {n}"),
            Tok::Percent => "'%'".to_owned(),
            Tok::Op(op) => format!("'{}'", op.as_str()),
            Tok::And => "'&&'".to_owned(),
            Tok::Or => "'||'".to_owned(),
            Tok::LParen => "'('".to_owned(),
            Tok::RParen => "')'".to_owned(),
            Tok::End => "the end of the criteria".to_owned(),
        };
        ParseError {
            column: self.column,
            kind: ParseErrorKind::Expected { expected, found },
        }
    }
}

struct Lexer<'a> {
    input: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// 1-based column (in characters) of the next character.
    col: usize,
}

impl Lexer<'_> {
    fn peek_char(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        self.col += 1;
        Some(c)
    }

    fn err(column: usize, kind: ParseErrorKind) -> ParseError {
        ParseError { column, kind }
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        while self.peek_char().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let column = self.col;
        let Some(c) = self.bump() else {
            return Ok(Token {
                tok: Tok::End,
                column,
            });
        };
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '%' => Tok::Percent,
            '"' => self.quoted(column)?,
            '0'..='9' => self.number(c, column)?,
            '&' | '|' | '=' => {
                let (twin, tok) = match c {
                    '&' => ("'&&'", Tok::And),
                    '|' => ("'||'", Tok::Or),
                    _ => ("'=='", Tok::Op(Op::Eq)),
                };
                if self.peek_char() == Some(c) {
                    self.bump();
                    tok
                } else {
                    return Err(Self::err(
                        column,
                        ParseErrorKind::Expected {
                            expected: twin,
                            found: format!("a single '{c}'"),
                        },
                    ));
                }
            }
            '>' | '<' | '!' => {
                let with_eq = self.peek_char() == Some('=');
                if with_eq {
                    self.bump();
                }
                match (c, with_eq) {
                    ('>', false) => Tok::Op(Op::Gt),
                    ('>', true) => Tok::Op(Op::Ge),
                    ('<', false) => Tok::Op(Op::Lt),
                    ('<', true) => Tok::Op(Op::Le),
                    ('!', true) => Tok::Op(Op::Ne),
                    _ => {
                        return Err(Self::err(
                            column,
                            ParseErrorKind::Expected {
                                expected: "'!='",
                                found: "a single '!'".to_owned(),
                            },
                        ));
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::from(c);
                while let Some(c) = self
                    .peek_char()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    word.push(c);
                    self.bump();
                }
                Tok::Word(word)
            }
            other => return Err(Self::err(column, ParseErrorKind::UnexpectedChar(other))),
        };
        Ok(Token { tok, column })
    }

    fn number(&mut self, first: char, column: usize) -> Result<Tok, ParseError> {
        let mut value = u64::from(first as u8 - b'0');
        let mut overflow = false;
        while let Some(c) = self.peek_char().filter(char::is_ascii_digit) {
            self.bump();
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c as u8 - b'0')))
            {
                Some(v) => value = v,
                None => overflow = true,
            }
        }
        if overflow {
            return Err(Self::err(column, ParseErrorKind::NumberTooLarge));
        }
        if matches!(self.peek_char(), Some('.' | ',')) {
            return Err(Self::err(self.col, ParseErrorKind::Decimal));
        }
        Ok(Tok::Number(value))
    }

    fn quoted(&mut self, column: usize) -> Result<Tok, ParseError> {
        let start = self.pos;
        loop {
            match self.bump() {
                Some('"') => break,
                Some(_) => {}
                None => return Err(Self::err(column, ParseErrorKind::UnterminatedQuote)),
            }
        }
        let body = &self.input[start..self.pos - 1];
        let (name, code) = match body.split_once('|') {
            Some((name, code)) => (name, Some(code)),
            None => (body, None),
        };
        let make: fn(StatusSel) -> Term = match name {
            "count" if code.is_none() => return Ok(Tok::Term(Term::Count)),
            "status_count" => Term::StatusCount,
            "status_ratio" => Term::StatusRatio,
            _ => {
                return Err(Self::err(
                    column,
                    ParseErrorKind::UnknownTerm(body.to_owned()),
                ));
            }
        };
        let Some(code) = code else {
            let name = if name == "status_count" {
                "status_count"
            } else {
                "status_ratio"
            };
            return Err(Self::err(column, ParseErrorKind::MissingCode(name)));
        };
        // Column of the code: after the opening quote, the name and the '|'.
        let code_column = column + 1 + name.chars().count() + 1;
        let sel = parse_status(code)
            .ok_or_else(|| Self::err(code_column, ParseErrorKind::BadStatus(code.to_owned())))?;
        Ok(Tok::Term(make(sel)))
    }
}

fn parse_status(code: &str) -> Option<StatusSel> {
    match code.as_bytes() {
        [class @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => Some(StatusSel::Class(class - b'0')),
        [a @ b'1'..=b'5', b, c] if b.is_ascii_digit() && c.is_ascii_digit() => {
            Some(StatusSel::Code(
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
            ))
        }
        _ => None,
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
}

impl Parser<'_> {
    fn peek(&mut self) -> Result<&Token, ParseError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn or_expr(&mut self, depth: usize) -> Result<Criteria, ParseError> {
        let mut left = self.and_expr(depth)?;
        while self.peek()?.tok == Tok::Or {
            self.next()?;
            let right = self.and_expr(depth)?;
            left = Criteria::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, depth: usize) -> Result<Criteria, ParseError> {
        let mut left = self.primary(depth)?;
        while self.peek()?.tok == Tok::And {
            self.next()?;
            let right = self.primary(depth)?;
            left = Criteria::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self, depth: usize) -> Result<Criteria, ParseError> {
        let token = self.next()?;
        match token.tok {
            Tok::LParen => {
                if depth >= MAX_DEPTH {
                    return Err(ParseError {
                        column: token.column,
                        kind: ParseErrorKind::TooDeep,
                    });
                }
                let inner = self.or_expr(depth + 1)?;
                let close = self.next()?;
                if close.tok != Tok::RParen {
                    return Err(close.expected("'&&', '||' or ')'"));
                }
                Ok(inner)
            }
            Tok::Term(term) => self.comparison(term),
            Tok::Word(word) if is_term_like(&word) => Err(ParseError {
                column: token.column,
                kind: ParseErrorKind::UnquotedTerm(word),
            }),
            _ => Err(token.expected("a term such as \"count\", or '('")),
        }
    }

    fn comparison(&mut self, term: Term) -> Result<Criteria, ParseError> {
        let token = self.next()?;
        let Tok::Op(op) = token.tok else {
            return Err(token.expected("a comparison operator (>, >=, <, <=, ==, !=)"));
        };
        let token = self.next()?;
        let Tok::Number(value) = token.tok else {
            let expected = match term {
                Term::StatusRatio(_) => "a percentage such as 60%",
                _ => "a whole number such as 50",
            };
            return Err(token.expected(expected));
        };
        let percent = match self.peek()? {
            Token {
                tok: Tok::Percent,
                column,
            } => Some(*column),
            _ => None,
        };
        match (term, percent) {
            (Term::StatusRatio(_), Some(_)) => {
                self.next()?;
                if value > 100 {
                    return Err(ParseError {
                        column: token.column,
                        kind: ParseErrorKind::PercentOutOfRange(value),
                    });
                }
            }
            (Term::StatusRatio(_), None) => {
                return Err(ParseError {
                    column: token.column,
                    kind: ParseErrorKind::PercentRequired(term.to_string()),
                });
            }
            (_, Some(column)) => {
                return Err(ParseError {
                    column,
                    kind: ParseErrorKind::PercentNotAllowed(term.to_string()),
                });
            }
            (_, None) => {}
        }
        Ok(Criteria::Cmp(Comparison { term, op, value }))
    }
}

fn is_term_like(word: &str) -> bool {
    matches!(word, "count" | "status_count" | "status_ratio")
}
