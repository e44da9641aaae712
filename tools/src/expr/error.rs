//! Errors of the expression language, with the source position they point
//! at, and their rendering: the message, then the expression line and a
//! caret (`^^^`) under the offending columns.
//!
//! A [`Span`] is a half-open byte range into the source string; rendering
//! converts bytes to character columns, so carets line up for any UTF-8.

use std::fmt;

/// A half-open byte range `[start, end)` into the expression source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// The span `[start, end)`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// Which stage found the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Tokenizing or parsing: the text is not a valid expression.
    Parse,
    /// Building the array program: unknown names, bad arguments, shapes.
    Eval,
}

/// An error in an expression, pointing at where it is.
#[derive(Debug)]
pub struct ExprError {
    pub stage: Stage,
    pub message: String,
    pub span: Span,
    /// The underlying library error, if any (kept for the cause chain).
    pub cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ExprError {
    /// A syntax error at `span`.
    pub fn parse(message: impl Into<String>, span: Span) -> ExprError {
        ExprError {
            stage: Stage::Parse,
            message: message.into(),
            span,
            cause: None,
        }
    }

    /// An evaluation error at `span`.
    pub fn eval(message: impl Into<String>, span: Span) -> ExprError {
        ExprError {
            stage: Stage::Eval,
            message: message.into(),
            span,
            cause: None,
        }
    }

    /// Attach the source text, for display.
    pub fn with_source(self, src: &str) -> SourcedError {
        SourcedError {
            err: self,
            src: src.to_string(),
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExprError {}

/// An [`ExprError`] with its source, displayed with a caret line:
///
/// ```text
/// syntax error: expected `)`
///   mean(x
///         ^
/// ```
#[derive(Debug)]
pub struct SourcedError {
    pub err: ExprError,
    pub src: String,
}

impl SourcedError {
    /// The message, the source line holding the span, and the caret line.
    pub fn render(&self) -> String {
        let stage = match self.err.stage {
            Stage::Parse => "syntax error",
            Stage::Eval => "in expression",
        };
        let (line, col, width) = caret_position(&self.src, self.err.span);
        let mut msg = self.err.message.clone();
        if let Some(c) = &self.err.cause {
            msg = format!("{msg}: {c}");
        }
        format!(
            "{stage}: {msg}\n  {line}\n  {}{}",
            " ".repeat(col),
            "^".repeat(width)
        )
    }
}

impl fmt::Display for SourcedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for SourcedError {}

/// The line of `src` holding `span.start`, the caret's column (in chars) and
/// its width (at least 1, at most to the end of the line).
fn caret_position(src: &str, span: Span) -> (&str, usize, usize) {
    let start = floor_char_boundary(src, span.start.min(src.len()));
    let end = floor_char_boundary(src, span.end.clamp(start, src.len()));
    let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
    let line = &src[line_start..line_end];
    let col = src[line_start..start].chars().count();
    let width = src[start..end.min(line_end).max(start)]
        .chars()
        .count()
        .max(1);
    (line, col, width)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_the_span() {
        let e = ExprError::parse("expected `)`", Span::new(6, 6)).with_source("mean(x");
        assert_eq!(
            e.render(),
            "syntax error: expected `)`\n  mean(x\n        ^"
        );
        let e = ExprError::eval("unknown name `y`", Span::new(4, 5)).with_source("x = y\nx");
        assert_eq!(
            e.render(),
            "in expression: unknown name `y`\n  x = y\n      ^"
        );
    }

    #[test]
    fn caret_counts_characters_not_bytes() {
        let src = "'é' + $";
        let e = ExprError::parse("bad", Span::new(7, 8)).with_source(src);
        assert!(e.render().ends_with("\n        ^"), "{}", e.render());
    }

    #[test]
    fn caret_on_later_lines() {
        let e = ExprError::parse("bad", Span::new(6, 8)).with_source("a\nb = ??");
        assert_eq!(e.render(), "syntax error: bad\n  b = ??\n      ^^");
    }
}
