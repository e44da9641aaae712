//! The syntax tree of `ndstream eval` programs.
//!
//! A [`Program`] is `;`-separated statements, each an optional
//! `name =` target and an [`Expr`]. Every node keeps its source [`Span`]
//! (for error carets) and its depth (the parser refuses trees deeper than
//! [`MAX_DEPTH`], so evaluating and dropping a tree never overflows the
//! stack).

use super::error::Span;

/// The deepest tree the parser builds.
pub const MAX_DEPTH: u32 = 200;

/// A whole program: statements, the last of which is the result.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub stmts: Vec<Stmt>,
}

/// `name = value` or a bare expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub target: Option<(String, Span)>,
    pub value: Expr,
}

/// An expression node with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    pub depth: u32,
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `+x`
    Pos,
    /// `~x` (logical not of a boolean array)
    Invert,
}

/// Infix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    BitAnd,
    BitOr,
    BitXor,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }
}

/// A keyword argument `name=value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Kwarg {
    pub name: String,
    pub span: Span,
    pub value: Expr,
}

/// What an expression is.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// `None` (a new axis inside an index).
    None,
    /// `...`
    Ellipsis,
    Name(String),
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    Unary {
        op: UnOp,
        x: Box<Expr>,
    },
    Binary {
        op: BinOp,
        l: Box<Expr>,
        r: Box<Expr>,
    },
    Call {
        func: Box<Expr>,
        args: Vec<Expr>,
        kwargs: Vec<Kwarg>,
    },
    /// `x.name`
    Attr {
        x: Box<Expr>,
        name: String,
        name_span: Span,
    },
    /// `x[items]`
    Index {
        x: Box<Expr>,
        items: Vec<Expr>,
    },
    /// `start:stop:step`, only inside an index.
    Slice {
        start: Option<Box<Expr>>,
        stop: Option<Box<Expr>>,
        step: Option<Box<Expr>>,
    },
}

impl Expr {
    /// A node whose depth is one more than its deepest child.
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        let depth = 1 + kind.children().map(|c| c.depth).max().unwrap_or(0);
        Expr { kind, span, depth }
    }
}

impl ExprKind {
    /// The direct children, in source order.
    pub fn children(&self) -> Box<dyn Iterator<Item = &Expr> + '_> {
        match self {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Str(_)
            | ExprKind::Bool(_)
            | ExprKind::None
            | ExprKind::Ellipsis
            | ExprKind::Name(_) => Box::new(std::iter::empty()),
            ExprKind::Tuple(v) | ExprKind::List(v) => Box::new(v.iter()),
            ExprKind::Unary { x, .. } | ExprKind::Attr { x, .. } => Box::new(std::iter::once(&**x)),
            ExprKind::Binary { l, r, .. } => Box::new([&**l, &**r].into_iter()),
            ExprKind::Call { func, args, kwargs } => Box::new(
                std::iter::once(&**func)
                    .chain(args.iter())
                    .chain(kwargs.iter().map(|k| &k.value)),
            ),
            ExprKind::Index { x, items } => Box::new(std::iter::once(&**x).chain(items.iter())),
            ExprKind::Slice { start, stop, step } => {
                Box::new([start, stop, step].into_iter().flatten().map(|b| &**b))
            }
        }
    }
}
