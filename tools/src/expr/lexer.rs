//! The tokenizer of `ndstream eval`'s expression language (a small subset of
//! Python's lexical grammar).
//!
//! Invariants: every token carries the byte span it came from in the
//! source, spans are in increasing order and never overlap, and the token
//! list always ends with exactly one [`Tok::End`] whose span is the empty
//! span at the end of the input. Newlines outside brackets become
//! [`Tok::Semi`] (statement separators), inside brackets they are
//! whitespace, as in Python. The lexer never panics: anything it cannot
//! read is an [`ExprError`] pointing at the offending column.

use super::error::{ExprError, Span};

/// One token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An integer literal (`1`, `1_000`).
    Int(i64),
    /// A float literal (`1.5`, `.5`, `1e-6`, `2.`).
    Float(f64),
    /// A string literal (`'a.h5:/x'`, `"b"`, `r'c'`), escapes resolved.
    Str(String),
    /// A name (`x`, `mean`, `np`); keywords are names too and the parser
    /// decides (`None`, `True`, `False`, `and`, ...).
    Ident(String),
    /// An operator or punctuation (`+`, `**`, `//`, `(`, `...`, `=`).
    Op(&'static str),
    /// A statement separator (`;` or a newline outside brackets).
    Semi,
    /// The end of the input.
    End,
}

/// A token and where it is in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Operators, longest first so that `**` wins over `*`.
const OPS: [&str; 29] = [
    "...", "**", "//", "==", "!=", "<=", ">=", "<<", ">>", "+", "-", "*", "/", "%", "@", "<", ">",
    "&", "|", "^", "~", "(", ")", "[", "]", ",", ":", ".", "=",
];

/// Split `src` into tokens.
///
/// # Errors
/// An unknown character, an unterminated string, a malformed number.
pub fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut depth: usize = 0;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' => i += 1,
            b'\n' => {
                if depth == 0 {
                    out.push(Token {
                        tok: Tok::Semi,
                        span: Span::new(i, i + 1),
                    });
                }
                i += 1;
            }
            b';' => {
                out.push(Token {
                    tok: Tok::Semi,
                    span: Span::new(i, i + 1),
                });
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'0'..=b'9' => {
                let (tok, end) = number(src, i)?;
                out.push(Token {
                    tok,
                    span: Span::new(i, end),
                });
                i = end;
            }
            b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let (tok, end) = number(src, i)?;
                out.push(Token {
                    tok,
                    span: Span::new(i, end),
                });
                i = end;
            }
            b'\'' | b'"' => {
                let (s, end) = string(src, i + 1, c, false)?;
                out.push(Token {
                    tok: Tok::Str(s),
                    span: Span::new(i, end),
                });
                i = end;
            }
            b'r' | b'R' if matches!(bytes.get(i + 1), Some(b'\'' | b'"')) => {
                let q = bytes[i + 1];
                let (s, end) = string(src, i + 2, q, true)?;
                out.push(Token {
                    tok: Tok::Str(s),
                    span: Span::new(i, end),
                });
                i = end;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(src[start..i].to_string()),
                    span: Span::new(start, i),
                });
            }
            _ => {
                let rest = &src[i..];
                let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
                    let ch = rest.chars().next().unwrap_or('?');
                    return Err(ExprError::parse(
                        format!("unexpected character {ch:?}"),
                        Span::new(i, i + ch.len_utf8()),
                    ));
                };
                match *op {
                    "(" | "[" => depth += 1,
                    ")" | "]" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                out.push(Token {
                    tok: Tok::Op(op),
                    span: Span::new(i, i + op.len()),
                });
                i += op.len();
            }
        }
    }
    out.push(Token {
        tok: Tok::End,
        span: Span::new(src.len(), src.len()),
    });
    Ok(out)
}

/// A number starting at byte `start`: digits with `_`, an optional fraction
/// and exponent. Returns the token and the end offset.
fn number(src: &str, start: usize) -> Result<(Tok, usize), ExprError> {
    let b = src.as_bytes();
    let mut i = start;
    let digits = |i: &mut usize| {
        while *i < b.len() && (b[*i].is_ascii_digit() || b[*i] == b'_') {
            *i += 1;
        }
    };
    digits(&mut i);
    let mut is_float = false;
    if i < b.len() && b[i] == b'.' && !src[i..].starts_with("...") {
        is_float = true;
        i += 1;
        digits(&mut i);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            is_float = true;
            i = j;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphabetic()) {
        let mut j = i;
        while j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphanumeric()) {
            j += 1;
        }
        return Err(ExprError::parse(
            format!("invalid number literal `{}`", &src[start..j]),
            Span::new(start, j),
        ));
    }
    let text: String = src[start..i].chars().filter(|&c| c != '_').collect();
    let span = Span::new(start, i);
    if src[start..i].contains("__") || src[start..i].ends_with('_') {
        return Err(ExprError::parse(
            format!("invalid number literal `{}`", &src[start..i]),
            span,
        ));
    }
    if is_float {
        let v: f64 = text.parse().map_err(|_| {
            ExprError::parse(format!("invalid number literal `{}`", &src[start..i]), span)
        })?;
        Ok((Tok::Float(v), i))
    } else {
        let v: i64 = text.parse().map_err(|_| {
            ExprError::parse(
                format!(
                    "integer literal `{}` is too large (at most 2**63 - 1)",
                    &src[start..i]
                ),
                span,
            )
        })?;
        Ok((Tok::Int(v), i))
    }
}

/// A string body starting at byte `start` (after the quote), up to the
/// closing `quote`. Returns the value and the offset after the closing quote.
fn string(src: &str, start: usize, quote: u8, raw: bool) -> Result<(String, usize), ExprError> {
    let mut out = String::new();
    let mut chars = src[start..].char_indices();
    while let Some((off, ch)) = chars.next() {
        let at = start + off;
        if ch == quote as char {
            return Ok((out, at + 1));
        }
        if ch == '\n' {
            break;
        }
        if ch == '\\' && !raw {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '\'')) => out.push('\''),
                Some((_, '"')) => out.push('"'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            }
        } else {
            out.push(ch);
        }
    }
    let open = start - 1;
    Err(ExprError::parse(
        "unterminated string",
        Span::new(open, open + 1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s)
            .unwrap_or_else(|e| panic!("{s}: {e:?}"))
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn numbers_strings_and_operators() {
        assert_eq!(
            toks("x**-1.5e3 // .5"),
            vec![
                Tok::Ident("x".into()),
                Tok::Op("**"),
                Tok::Op("-"),
                Tok::Float(1500.0),
                Tok::Op("//"),
                Tok::Float(0.5),
                Tok::End
            ]
        );
        assert_eq!(
            toks("1_000 2."),
            vec![Tok::Int(1000), Tok::Float(2.0), Tok::End]
        );
        assert_eq!(
            toks(r#"'a\'b' "c" r'd\e'"#),
            vec![
                Tok::Str("a'b".into()),
                Tok::Str("c".into()),
                Tok::Str("d\\e".into()),
                Tok::End
            ]
        );
        assert_eq!(
            toks("x[...]"),
            vec![
                Tok::Ident("x".into()),
                Tok::Op("["),
                Tok::Op("..."),
                Tok::Op("]"),
                Tok::End
            ]
        );
    }

    #[test]
    fn newlines_separate_statements_only_outside_brackets() {
        assert_eq!(
            toks("a\nb"),
            vec![
                Tok::Ident("a".into()),
                Tok::Semi,
                Tok::Ident("b".into()),
                Tok::End
            ]
        );
        assert_eq!(
            toks("(a\n)"),
            vec![Tok::Op("("), Tok::Ident("a".into()), Tok::Op(")"), Tok::End]
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = tokenize("x + $").unwrap_err();
        assert_eq!(e.span, Span::new(4, 5));
        let e = tokenize("open('abc").unwrap_err();
        assert_eq!(e.span, Span::new(5, 6));
        assert!(tokenize("12abc").is_err());
        assert!(tokenize("99999999999999999999").is_err());
        assert!(tokenize("1__0").is_err());
    }

    #[test]
    fn spans_cover_tokens() {
        let t = tokenize("ab + 'cd'").unwrap_or_default();
        assert_eq!(t[0].span, Span::new(0, 2));
        assert_eq!(t[1].span, Span::new(3, 4));
        assert_eq!(t[2].span, Span::new(5, 9));
        assert_eq!(t[3].span, Span::new(9, 9));
    }
}
