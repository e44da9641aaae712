//! Elementwise kernels (CONTRACT — being implemented).

use crate::block::Block;
use crate::dtype::DType;
use crate::error::Result;

/// One-input elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sqrt,
    Exp,
    Log,
    Log1p,
    Sin,
    Cos,
    Tanh,
    Square,
    Floor,
    Ceil,
    Not,
    IsNan,
    IsFinite,
}

/// Two-input elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Rem,
    Pow,
    Maximum,
    Minimum,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
}

/// Result dtype of a unary op on `input`.
pub fn unary_dtype(op: UnaryOp, input: DType) -> Result<DType> {
    let _ = (op, input);
    unimplemented!()
}

/// The dtype both operands are cast to before the kernel runs, and the result dtype.
pub fn binary_dtypes(op: BinaryOp, a: DType, b: DType) -> Result<(DType, DType)> {
    let _ = (op, a, b);
    unimplemented!()
}

/// Apply a unary op.
pub fn unary(op: UnaryOp, x: &Block) -> Result<Block> {
    let _ = (op, x);
    unimplemented!()
}

/// Apply a binary op with NumPy broadcasting; both blocks have the operand dtype.
pub fn binary(op: BinaryOp, a: &Block, b: &Block) -> Result<Block> {
    let _ = (op, a, b);
    unimplemented!()
}

/// `where(cond, a, b)` with broadcasting; `a` and `b` share a dtype.
pub fn where_(cond: &Block, a: &Block, b: &Block) -> Result<Block> {
    let _ = (cond, a, b);
    unimplemented!()
}

/// `clip(x, lo, hi)`; either bound may be absent.
pub fn clip(x: &Block, lo: Option<f64>, hi: Option<f64>) -> Result<Block> {
    let _ = (x, lo, hi);
    unimplemented!()
}
