//! A recursive-descent (Pratt) parser for `ndstream eval` programs, with
//! Python's operator precedence.
//!
//! From loosest to tightest: comparisons (`== != < <= > >=`, not
//! chainable here), `|`, `^`, `&`, `+ -`, `* / // % @`, prefix `- + ~`,
//! `**` (right-associative; its right operand may carry a prefix, so
//! `-x**2 == -(x**2)` and `2**-1` parse as in Python), then calls,
//! attributes and subscripts. Statements are separated by `;` (or
//! newlines outside brackets); `name = expr` binds a name.
//!
//! Invariants: the parser never panics and never recurses deeper than
//! [`MAX_DEPTH`] (deeper input is an error), and every error points at the
//! token where parsing went wrong.

use super::ast::{BinOp, Expr, ExprKind, Kwarg, Program, Stmt, UnOp, MAX_DEPTH};
use super::error::{ExprError, Span};
use super::lexer::{tokenize, Tok, Token};

/// Parse a whole program.
///
/// # Errors
/// A syntax error pointing at the offending token.
pub fn parse_program(src: &str) -> Result<Program, ExprError> {
    let mut p = Parser::new(src)?;
    let mut stmts = Vec::new();
    loop {
        while p.peek() == &Tok::Semi {
            p.pos += 1;
        }
        if p.peek() == &Tok::End {
            break;
        }
        stmts.push(p.statement()?);
        match p.peek() {
            Tok::Semi | Tok::End => {}
            _ => return Err(p.unexpected("`;` or the end of the expression")),
        }
    }
    let Some(last) = stmts.last() else {
        return Err(ExprError::parse(
            "empty expression",
            Span::new(0, src.len()),
        ));
    };
    if let Some((name, span)) = &last.target {
        return Err(ExprError::parse(
            format!("the last statement must be an expression (add `; {name}` to show `{name}`)"),
            *span,
        ));
    }
    Ok(Program { stmts })
}

/// Parse a single expression (no statements); used by tests.
#[cfg(test)]
///
/// # Errors
/// A syntax error pointing at the offending token.
pub fn parse_expr(src: &str) -> Result<Expr, ExprError> {
    let mut p = Parser::new(src)?;
    let e = p.expr(0)?;
    p.expect_end()?;
    Ok(e)
}

/// Parse the inside of a subscript, as `--select` takes it: `::2, 10:20`
/// or with brackets `[::2, 10:20]`.
///
/// # Errors
/// A syntax error pointing at the offending token.
pub fn parse_index_list(src: &str) -> Result<Vec<Expr>, ExprError> {
    let mut p = Parser::new(src)?;
    let items = if p.peek() == &Tok::Op("[") {
        p.pos += 1;
        let items = p.subscript_items("]")?;
        p.expect_op("]")?;
        items
    } else {
        p.subscript_items("")?
    };
    p.expect_end()?;
    Ok(items)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Current recursion depth of `expr`.
    depth: u32,
}

/// Binding power of an infix operator: (left, right, op).
fn infix(tok: &Tok) -> Option<(u8, u8, BinOp)> {
    let Tok::Op(op) = tok else { return None };
    Some(match *op {
        "==" => (10, 11, BinOp::Eq),
        "!=" => (10, 11, BinOp::Ne),
        "<" => (10, 11, BinOp::Lt),
        "<=" => (10, 11, BinOp::Le),
        ">" => (10, 11, BinOp::Gt),
        ">=" => (10, 11, BinOp::Ge),
        "|" => (20, 21, BinOp::BitOr),
        "^" => (30, 31, BinOp::BitXor),
        "&" => (40, 41, BinOp::BitAnd),
        "+" => (50, 51, BinOp::Add),
        "-" => (50, 51, BinOp::Sub),
        "*" => (60, 61, BinOp::Mul),
        "/" => (60, 61, BinOp::Div),
        "//" => (60, 61, BinOp::FloorDiv),
        "%" => (60, 61, BinOp::Mod),
        // Right-associative, and the right operand is a prefix expression.
        "**" => (80, PREFIX_BP, BinOp::Pow),
        _ => return None,
    })
}

const PREFIX_BP: u8 = 70;
const POSTFIX_BP: u8 = 90;
const COMPARE_BP: u8 = 10;

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
    )
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Int(v) => format!("the number {v}"),
        Tok::Float(v) => format!("the number {v}"),
        Tok::Str(s) => format!("the string {s:?}"),
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Semi => "`;`".to_string(),
        Tok::End => "the end of the expression".to_string(),
    }
}

impl Parser {
    fn new(src: &str) -> Result<Parser, ExprError> {
        Ok(Parser {
            toks: tokenize(src)?,
            pos: 0,
            depth: 0,
        })
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |t| &t.tok)
    }

    fn peek_at(&self, k: usize) -> &Tok {
        self.toks.get(self.pos + k).map_or(&Tok::End, |t| &t.tok)
    }

    fn span(&self) -> Span {
        match self.toks.get(self.pos).or(self.toks.last()) {
            Some(t) => t.span,
            None => Span::default(),
        }
    }

    fn prev_span(&self) -> Span {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or_else(|| self.span(), |t| t.span)
    }

    fn next(&mut self) -> Token {
        let t = self.toks.get(self.pos).cloned().unwrap_or(Token {
            tok: Tok::End,
            span: self.span(),
        });
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, wanted: &str) -> ExprError {
        ExprError::parse(
            format!("expected {wanted}, found {}", describe(self.peek())),
            self.span(),
        )
    }

    fn expect_op(&mut self, op: &'static str) -> Result<Span, ExprError> {
        if self.peek() == &Tok::Op(op) {
            Ok(self.next().span)
        } else {
            Err(self.unexpected(&format!("`{op}`")))
        }
    }

    fn expect_end(&self) -> Result<(), ExprError> {
        match self.peek() {
            Tok::End => Ok(()),
            Tok::Semi => Err(ExprError::parse(
                "statements (`;`) are not allowed here",
                self.span(),
            )),
            _ => Err(self.unexpected("the end of the expression")),
        }
    }

    fn node(&self, kind: ExprKind, span: Span) -> Result<Expr, ExprError> {
        let e = Expr::new(kind, span);
        if e.depth > MAX_DEPTH {
            return Err(ExprError::parse(
                format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
                span,
            ));
        }
        Ok(e)
    }

    fn statement(&mut self) -> Result<Stmt, ExprError> {
        if let (Tok::Ident(name), Tok::Op("=")) = (self.peek().clone(), self.peek_at(1)) {
            let span = self.next().span;
            if is_keyword(&name) {
                return Err(ExprError::parse(
                    format!("cannot assign to the keyword `{name}`"),
                    span,
                ));
            }
            self.next();
            let value = self.expr(0)?;
            return Ok(Stmt {
                target: Some((name, span)),
                value,
            });
        }
        Ok(Stmt {
            target: None,
            value: self.expr(0)?,
        })
    }

    /// Pratt loop: a prefix expression, then infix/postfix operators that
    /// bind at least as tightly as `min_bp`.
    fn expr(&mut self, min_bp: u8) -> Result<Expr, ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::parse(
                format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
                self.span(),
            ));
        }
        let r = self.expr_inner(min_bp);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, min_bp: u8) -> Result<Expr, ExprError> {
        let mut lhs = self.prefix()?;
        loop {
            let tok = self.peek().clone();
            if POSTFIX_BP >= min_bp {
                match tok {
                    Tok::Op("(") => {
                        lhs = self.call(lhs)?;
                        continue;
                    }
                    Tok::Op("[") => {
                        self.next();
                        let items = self.subscript_items("]")?;
                        if items.is_empty() {
                            return Err(self.unexpected("an index"));
                        }
                        let end = self.expect_op("]")?;
                        let span = lhs.span.to(end);
                        lhs = self.node(
                            ExprKind::Index {
                                x: Box::new(lhs),
                                items,
                            },
                            span,
                        )?;
                        continue;
                    }
                    Tok::Op(".") => {
                        self.next();
                        let t = self.next();
                        let Tok::Ident(name) = t.tok else {
                            self.pos = self.pos.saturating_sub(1);
                            return Err(self.unexpected("an attribute name after `.`"));
                        };
                        let span = lhs.span.to(t.span);
                        lhs = self.node(
                            ExprKind::Attr {
                                x: Box::new(lhs),
                                name,
                                name_span: t.span,
                            },
                            span,
                        )?;
                        continue;
                    }
                    _ => {}
                }
            }
            if let Tok::Ident(k) = &tok {
                if matches!(k.as_str(), "and" | "or" | "not" | "in" | "is" | "if") {
                    return Err(ExprError::parse(
                        format!("`{k}` is not supported; use `&`, `|` and `~` for elementwise logic (with parentheses)"),
                        self.span(),
                    ));
                }
            }
            if let Tok::Op(o @ ("<<" | ">>" | "@")) = tok {
                return Err(ExprError::parse(
                    format!("the operator `{o}` is not supported"),
                    self.span(),
                ));
            }
            let Some((lbp, rbp, op)) = infix(&tok) else {
                break;
            };
            if lbp < min_bp {
                break;
            }
            self.next();
            let rhs = self.expr(rbp)?;
            let span = lhs.span.to(rhs.span);
            if is_comparison(op) && infix(self.peek()).is_some_and(|(l, _, _)| l == COMPARE_BP) {
                return Err(ExprError::parse(
                    "chained comparisons are not supported; write `(a < b) & (b < c)`",
                    span,
                ));
            }
            lhs = self.node(
                ExprKind::Binary {
                    op,
                    l: Box::new(lhs),
                    r: Box::new(rhs),
                },
                span,
            )?;
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> Result<Expr, ExprError> {
        let t = self.next();
        let span = t.span;
        let kind = match t.tok {
            Tok::Int(v) => ExprKind::Int(v),
            Tok::Float(v) => ExprKind::Float(v),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Op("...") => ExprKind::Ellipsis,
            Tok::Op(o @ ("-" | "+" | "~")) => {
                let op = match o {
                    "-" => UnOp::Neg,
                    "+" => UnOp::Pos,
                    _ => UnOp::Invert,
                };
                let x = self.expr(PREFIX_BP)?;
                let span = span.to(x.span);
                return self.node(ExprKind::Unary { op, x: Box::new(x) }, span);
            }
            Tok::Op("(") => return self.paren(span),
            Tok::Op("[") => {
                let (items, end) = self.sequence("]")?;
                return self.node(ExprKind::List(items), span.to(end));
            }
            Tok::Ident(name) => match name.as_str() {
                "None" => ExprKind::None,
                "True" => ExprKind::Bool(true),
                "False" => ExprKind::Bool(false),
                k if is_keyword(k) => {
                    let hint = if matches!(k, "not" | "and" | "or") {
                        "; use `&`, `|` and `~` for elementwise logic"
                    } else {
                        ""
                    };
                    return Err(ExprError::parse(
                        format!("`{k}` is not supported{hint}"),
                        span,
                    ));
                }
                _ => ExprKind::Name(name),
            },
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.unexpected("a value"));
            }
        };
        self.node(kind, span)
    }

    /// After `(`: `()`, `(e)`, `(e,)`, `(a, b)`.
    fn paren(&mut self, open: Span) -> Result<Expr, ExprError> {
        if self.peek() == &Tok::Op(")") {
            let end = self.next().span;
            return self.node(ExprKind::Tuple(vec![]), open.to(end));
        }
        let first = self.expr(0)?;
        if self.peek() == &Tok::Op(")") {
            let end = self.next().span;
            let mut e = first;
            e.span = open.to(end);
            return Ok(e);
        }
        if self.peek() != &Tok::Op(",") {
            return Err(self.unexpected("`)` or `,`"));
        }
        self.next();
        let (mut rest, end) = self.sequence(")")?;
        rest.insert(0, first);
        self.node(ExprKind::Tuple(rest), open.to(end))
    }

    /// Comma-separated expressions up to `close` (consumed), trailing comma allowed.
    fn sequence(&mut self, close: &'static str) -> Result<(Vec<Expr>, Span), ExprError> {
        let mut items = Vec::new();
        loop {
            if self.peek() == &Tok::Op(close) {
                return Ok((items, self.next().span));
            }
            items.push(self.expr(0)?);
            match self.peek() {
                Tok::Op(",") => {
                    self.next();
                }
                Tok::Op(c) if *c == close => {}
                _ => return Err(self.unexpected(&format!("`,` or `{close}`"))),
            }
        }
    }

    /// `f(args, kw=value)`, after the callee.
    fn call(&mut self, func: Expr) -> Result<Expr, ExprError> {
        self.expect_op("(")?;
        let mut args = Vec::new();
        let mut kwargs: Vec<Kwarg> = Vec::new();
        loop {
            if self.peek() == &Tok::Op(")") {
                break;
            }
            if let (Tok::Ident(name), Tok::Op("=")) = (self.peek().clone(), self.peek_at(1)) {
                let span = self.next().span;
                self.next();
                if kwargs.iter().any(|k| k.name == name) {
                    return Err(ExprError::parse(
                        format!("keyword argument `{name}` repeated"),
                        span,
                    ));
                }
                let value = self.expr(0)?;
                kwargs.push(Kwarg { name, span, value });
            } else {
                if matches!(self.peek(), Tok::Op("*" | "**")) {
                    return Err(ExprError::parse(
                        "`*args` and `**kwargs` are not supported",
                        self.span(),
                    ));
                }
                if !kwargs.is_empty() {
                    return Err(ExprError::parse(
                        "positional argument after a keyword argument",
                        self.span(),
                    ));
                }
                args.push(self.expr(0)?);
            }
            match self.peek() {
                Tok::Op(",") => {
                    self.next();
                }
                Tok::Op(")") => {}
                _ => return Err(self.unexpected("`,` or `)`")),
            }
        }
        let end = self.expect_op(")")?;
        let span = func.span.to(end);
        self.node(
            ExprKind::Call {
                func: Box::new(func),
                args,
                kwargs,
            },
            span,
        )
    }

    /// Subscript items up to `close` (not consumed; `""` means the end of input).
    fn subscript_items(&mut self, close: &'static str) -> Result<Vec<Expr>, ExprError> {
        let at_close = |p: &Parser| {
            if close.is_empty() {
                p.peek() == &Tok::End
            } else {
                p.peek() == &Tok::Op(close)
            }
        };
        let mut items = Vec::new();
        while !at_close(self) {
            items.push(self.subscript_item(close)?);
            if self.peek() == &Tok::Op(",") {
                self.next();
            } else if !at_close(self) {
                let want = if close.is_empty() {
                    "`,`".to_string()
                } else {
                    format!("`,` or `{close}`")
                };
                return Err(self.unexpected(&want));
            }
        }
        Ok(items)
    }

    /// One subscript item: an expression or a slice `a:b:c` (each part optional).
    fn subscript_item(&mut self, close: &'static str) -> Result<Expr, ExprError> {
        let ends = |t: &Tok| match t {
            Tok::Op(",") | Tok::Op(":") | Tok::End => true,
            Tok::Op(c) => !close.is_empty() && *c == close,
            _ => false,
        };
        let start_span = self.span();
        let start = if ends(self.peek()) {
            None
        } else {
            Some(Box::new(self.expr(0)?))
        };
        if self.peek() != &Tok::Op(":") {
            return match start {
                Some(e) => Ok(*e),
                None => Err(self.unexpected("an index")),
            };
        }
        self.next();
        let stop = if ends(self.peek()) {
            None
        } else {
            Some(Box::new(self.expr(0)?))
        };
        let mut step = None;
        if self.peek() == &Tok::Op(":") {
            self.next();
            if !ends(self.peek()) {
                step = Some(Box::new(self.expr(0)?));
            }
        }
        let span = start_span.to(self.prev_span());
        self.node(ExprKind::Slice { start, stop, step }, span)
    }
}

/// Python keywords the language does not use as names.
fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "None"
            | "True"
            | "False"
            | "and"
            | "or"
            | "not"
            | "in"
            | "is"
            | "if"
            | "else"
            | "elif"
            | "lambda"
            | "for"
            | "while"
            | "def"
            | "return"
            | "import"
            | "from"
            | "as"
            | "with"
            | "class"
            | "del"
            | "pass"
            | "yield"
            | "global"
            | "nonlocal"
            | "assert"
            | "break"
            | "continue"
            | "try"
            | "except"
            | "finally"
            | "raise"
            | "await"
            | "async"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An S-expression rendering of a tree, for readable assertions.
    pub(crate) fn sexp(e: &Expr) -> String {
        let opt = |o: &Option<Box<Expr>>| o.as_ref().map_or("_".to_string(), |e| sexp(e));
        let list = |v: &[Expr]| v.iter().map(sexp).collect::<Vec<_>>().join(" ");
        match &e.kind {
            ExprKind::Int(v) => v.to_string(),
            ExprKind::Float(v) => format!("{v:?}"),
            ExprKind::Str(s) => format!("{s:?}"),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::None => "None".into(),
            ExprKind::Ellipsis => "...".into(),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Tuple(v) => format!("(tuple {})", list(v)),
            ExprKind::List(v) => format!("(list {})", list(v)),
            ExprKind::Unary { op, x } => format!("({op:?} {})", sexp(x)),
            ExprKind::Binary { op, l, r } => format!("({} {} {})", op.symbol(), sexp(l), sexp(r)),
            ExprKind::Call { func, args, kwargs } => {
                let kw: Vec<String> = kwargs
                    .iter()
                    .map(|k| format!("{}={}", k.name, sexp(&k.value)))
                    .collect();
                let mut parts = vec![sexp(func)];
                parts.extend(args.iter().map(sexp));
                parts.extend(kw);
                format!("(call {})", parts.join(" "))
            }
            ExprKind::Attr { x, name, .. } => format!("(. {} {name})", sexp(x)),
            ExprKind::Index { x, items } => format!("(idx {} {})", sexp(x), list(items)),
            ExprKind::Slice { start, stop, step } => {
                format!("{}:{}:{}", opt(start), opt(stop), opt(step))
            }
        }
    }

    fn p(s: &str) -> String {
        match parse_expr(s) {
            Ok(e) => sexp(&e),
            Err(e) => panic!("{s}: {}", e.with_source(s)),
        }
    }

    #[test]
    fn python_precedence() {
        assert_eq!(p("1 + 2 * 3"), "(+ 1 (* 2 3))");
        assert_eq!(p("1 - 2 - 3"), "(- (- 1 2) 3)");
        assert_eq!(p("-x**2"), "(Neg (** x 2))");
        assert_eq!(p("2**-1"), "(** 2 (Neg 1))");
        assert_eq!(p("a**b**c"), "(** a (** b c))");
        assert_eq!(p("-a*b"), "(* (Neg a) b)");
        assert_eq!(p("a < b + 1"), "(< a (+ b 1))");
        assert_eq!(p("a > 0 & b"), "(> a (& 0 b))");
        assert_eq!(
            p("(a > 0) & (b < 1) | ~c"),
            "(| (& (> a 0) (< b 1)) (Invert c))"
        );
        assert_eq!(p("a | b ^ c & d"), "(| a (^ b (& c d)))");
        assert_eq!(p("a // b % c * d / e"), "(/ (* (% (// a b) c) d) e)");
        assert_eq!(p("-x.mean()"), "(Neg (call (. x mean)))");
        assert_eq!(p("2**x[0]"), "(** 2 (idx x 0))");
    }

    #[test]
    fn calls_attributes_subscripts() {
        assert_eq!(p("open('a.h5:/x')"), "(call open \"a.h5:/x\")");
        assert_eq!(
            p("x.mean(axis=(0, 1), keepdims=True)"),
            "(call (. x mean) axis=(tuple 0 1) keepdims=true)"
        );
        assert_eq!(
            p("np.random.normal(0, 1, size=(10,), seed=3)"),
            "(call (. (. np random) normal) 0 1 size=(tuple 10) seed=3)"
        );
        assert_eq!(
            p("x[::2, 1:, :-1, ::-1]"),
            "(idx x _:_:2 1:_:_ _:(Neg 1):_ _:_:(Neg 1))"
        );
        assert_eq!(p("x[None, ..., 3]"), "(idx x None ... 3)");
        assert_eq!(p("x[x > 1e-6]"), "(idx x (> x 1e-6))");
        assert_eq!(p("x.T[0]"), "(idx (. x T) 0)");
        assert_eq!(p("stack([a, b], axis=0)"), "(call stack (list a b) axis=0)");
        assert_eq!(p("f(a,)"), "(call f a)");
        assert_eq!(p("(1,)"), "(tuple 1)");
        assert_eq!(p("()"), "(tuple )");
        assert_eq!(
            p("[x.sum(), x.mean(), x.std()]"),
            "(list (call (. x sum)) (call (. x mean)) (call (. x std)))"
        );
        assert_eq!(p("x[1:2:]"), "(idx x 1:2:_)");
    }

    #[test]
    fn programs() {
        let prog = parse_program("x = open('a.h5:/x'); y = x * 2\n y.mean()")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(prog.stmts.len(), 3);
        assert_eq!(
            prog.stmts[0].target.as_ref().map(|t| t.0.as_str()),
            Some("x")
        );
        assert_eq!(sexp(&prog.stmts[2].value), "(call (. y mean))");
        assert!(parse_program("x = 1").is_err());
        assert!(parse_program("").is_err());
        assert!(parse_program(";;").is_err());
        assert!(parse_program("1;").is_ok());
    }

    #[test]
    fn index_lists_for_select() {
        let items = parse_index_list("::2, 10:20").unwrap_or_default();
        assert_eq!(
            items.iter().map(sexp).collect::<Vec<_>>(),
            vec!["_:_:2", "10:20:_"]
        );
        let items = parse_index_list("[0, ::-1]").unwrap_or_default();
        assert_eq!(
            items.iter().map(sexp).collect::<Vec<_>>(),
            vec!["0", "_:_:(Neg 1)"]
        );
        assert!(parse_index_list("::2 ::2").is_err());
        assert!(parse_index_list("[::2").is_err());
    }

    #[test]
    fn errors_point_at_the_token() {
        let err = |s: &str| {
            parse_program(s)
                .err()
                .map(|e| (e.span.start, e.message))
                .unwrap_or_default()
        };
        assert_eq!(err("mean(x").0, 6);
        assert_eq!(err("1 + * 2").0, 4);
        assert!(err("a < b < c").1.contains("chained"));
        assert!(err("a and b").1.contains("&"));
        assert!(err("f(a=1, 2)").1.contains("positional"));
        assert!(err("f(a=1, a=2)").1.contains("repeated"));
        assert_eq!(err("x[]").0, 2);
        assert_eq!(err("x.1").0, 1);
        assert!(err("None = 3").1.contains("keyword"));
        assert!(err("x << 2").1.contains("<<"));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse_program(&deep).unwrap_err().message.contains("deeply"));
        let long = vec!["1"; 5000].join("+");
        assert!(parse_program(&long).unwrap_err().message.contains("deeply"));
        let neg = format!("{}1", "-".repeat(5000));
        assert!(parse_program(&neg).is_err());
        let ok = vec!["1"; 150].join("+");
        assert!(parse_program(&ok).is_ok());
    }

    #[test]
    fn regressions_from_fuzzing() {
        // Inputs that once crashed or misbehaved; they must give errors, not panics.
        for src in [
            "x[",
            "(",
            "f(a=",
            "x.",
            "1 <",
            "[::]",
            "x[:,",
            "'",
            "r'",
            "-",
            "a=;",
            "1e",
            ".",
            "...",
            "x[1:2:3:4]",
        ] {
            let _ = parse_program(src);
            let _ = parse_index_list(src);
        }
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        const TOKENS: [&str; 40] = [
            "x",
            "open",
            "(",
            ")",
            "[",
            "]",
            ",",
            ":",
            ";",
            "=",
            "+",
            "-",
            "*",
            "/",
            "//",
            "%",
            "**",
            "<",
            "<=",
            "==",
            "!=",
            "&",
            "|",
            "^",
            "~",
            ".",
            "...",
            "None",
            "True",
            "'a.h5:/x'",
            "1",
            "2.5",
            "1e-6",
            "axis",
            "mean",
            "\n",
            "and",
            "lambda",
            "@",
            "#",
        ];

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn random_strings_never_panic(s in "\\PC{0,40}") {
                let _ = parse_program(&s);
                let _ = parse_index_list(&s);
            }

            #[test]
            fn token_soups_never_panic(toks in proptest::collection::vec(0..TOKENS.len(), 0..30)) {
                let src: Vec<&str> = toks.iter().map(|&i| TOKENS[i]).collect();
                let src = src.join(" ").replace("\\n", "\n");
                match parse_program(&src) {
                    Ok(p) => prop_assert!(!p.stmts.is_empty()),
                    Err(e) => {
                        prop_assert!(e.span.start <= src.len() && e.span.end <= src.len());
                        let _ = e.with_source(&src).render();
                    }
                }
            }
        }
    }
}
