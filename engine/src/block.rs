//! [`Block`]: one dynamically typed n-dimensional buffer.
//!
//! Chunks, tiles and results travel through the engine as `Block`s: an enum
//! with one `ndarray::ArrayD` variant per [`DType`]. Kernels are written once
//! as generic functions over [`Element`] and reached through
//! [`with_block!`](crate::with_block), which expands to an exhaustive `match`.
//!
//! A `Block` does not own a budget reservation: whoever allocates it reserves
//! first (see [`crate::budget`]) and keeps the reservation beside it.

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::dtype::{DType, Element};

/// An owned n-dimensional array of any [`DType`].
///
/// ```
/// use ndstream_engine::{Block, DType};
/// let b = Block::from(ndarray::arr1(&[1.0f32, 2.0]).into_dyn());
/// assert_eq!(b.dtype(), DType::F32);
/// assert_eq!(b.shape(), &[2]);
/// assert_eq!(b.nbytes(), 8);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    Bool(ArrayD<bool>),
    I8(ArrayD<i8>),
    I16(ArrayD<i16>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
    U16(ArrayD<u16>),
    U32(ArrayD<u32>),
    U64(ArrayD<u64>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
}

/// Run `$body` with `$a` bound to the typed array inside a [`Block`]
/// (by reference, `&ArrayD<T>`), for whatever dtype it holds. Inside the
/// body the element type is available as the alias `$T`.
///
/// ```
/// use ndstream_engine::{with_block, Block};
/// let b = Block::from(ndarray::arr1(&[1i32, 2, 3]).into_dyn());
/// let total: f64 = with_block!(&b, a, T => a.iter().map(|&v| <T as ndstream_engine::Element>::to_f64(v)).sum());
/// assert_eq!(total, 6.0);
/// ```
#[macro_export]
macro_rules! with_block {
    ($block:expr, $a:ident, $T:ident => $body:expr) => {
        match $block {
            $crate::Block::Bool($a) => {
                #[allow(dead_code)]
                type $T = bool;
                $body
            }
            $crate::Block::I8($a) => {
                #[allow(dead_code)]
                type $T = i8;
                $body
            }
            $crate::Block::I16($a) => {
                #[allow(dead_code)]
                type $T = i16;
                $body
            }
            $crate::Block::I32($a) => {
                #[allow(dead_code)]
                type $T = i32;
                $body
            }
            $crate::Block::I64($a) => {
                #[allow(dead_code)]
                type $T = i64;
                $body
            }
            $crate::Block::U8($a) => {
                #[allow(dead_code)]
                type $T = u8;
                $body
            }
            $crate::Block::U16($a) => {
                #[allow(dead_code)]
                type $T = u16;
                $body
            }
            $crate::Block::U32($a) => {
                #[allow(dead_code)]
                type $T = u32;
                $body
            }
            $crate::Block::U64($a) => {
                #[allow(dead_code)]
                type $T = u64;
                $body
            }
            $crate::Block::F32($a) => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $crate::Block::F64($a) => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
        }
    };
}

/// Run `$body` with the type alias `$T` set to the Rust type of a [`DType`].
///
/// ```
/// use ndstream_engine::{with_dtype, DType};
/// let n = with_dtype!(DType::I16, T => std::mem::size_of::<T>());
/// assert_eq!(n, 2);
/// ```
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
            $crate::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::DType::I16 => {
                type $T = i16;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::U16 => {
                type $T = u16;
                $body
            }
            $crate::DType::U32 => {
                type $T = u32;
                $body
            }
            $crate::DType::U64 => {
                type $T = u64;
                $body
            }
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

/// Conversion between a typed array and a [`Block`].
pub trait BlockElement: Element {
    /// Wrap a typed array.
    fn into_block(a: ArrayD<Self>) -> Block;
    /// Borrow the typed array if the block holds this type.
    fn as_array(b: &Block) -> Option<&ArrayD<Self>>;
    /// Take the typed array if the block holds this type.
    fn from_block(b: Block) -> Result<ArrayD<Self>, Block>;
}

macro_rules! block_element {
    ($t:ty, $v:ident) => {
        impl BlockElement for $t {
            fn into_block(a: ArrayD<Self>) -> Block {
                Block::$v(a)
            }
            fn as_array(b: &Block) -> Option<&ArrayD<Self>> {
                match b {
                    Block::$v(a) => Some(a),
                    _ => None,
                }
            }
            fn from_block(b: Block) -> Result<ArrayD<Self>, Block> {
                match b {
                    Block::$v(a) => Ok(a),
                    other => Err(other),
                }
            }
        }
        impl From<ArrayD<$t>> for Block {
            fn from(a: ArrayD<$t>) -> Block {
                Block::$v(a)
            }
        }
    };
}
block_element!(bool, Bool);
block_element!(i8, I8);
block_element!(i16, I16);
block_element!(i32, I32);
block_element!(i64, I64);
block_element!(u8, U8);
block_element!(u16, U16);
block_element!(u32, U32);
block_element!(u64, U64);
block_element!(f32, F32);
block_element!(f64, F64);

impl Block {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            Block::Bool(_) => DType::Bool,
            Block::I8(_) => DType::I8,
            Block::I16(_) => DType::I16,
            Block::I32(_) => DType::I32,
            Block::I64(_) => DType::I64,
            Block::U8(_) => DType::U8,
            Block::U16(_) => DType::U16,
            Block::U32(_) => DType::U32,
            Block::U64(_) => DType::U64,
            Block::F32(_) => DType::F32,
            Block::F64(_) => DType::F64,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        with_block!(self, a, T => a.shape())
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// True if the block has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the elements occupy.
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// A block of `shape` filled with zeros (false for bool).
    pub fn zeros(dtype: DType, shape: &[usize]) -> Block {
        with_dtype!(dtype, T => Block::from(ArrayD::<T>::default(IxDyn(shape))))
    }

    /// A block of `shape` filled with `value` (cast from f64 as `astype` would).
    pub fn full(dtype: DType, shape: &[usize], value: f64) -> Block {
        with_dtype!(dtype, T => Block::from(ArrayD::<T>::from_elem(IxDyn(shape), value.cast::<T>())))
    }

    /// Borrow as a typed view, if the dtype matches.
    pub fn view<T: BlockElement>(&self) -> Option<ArrayViewD<'_, T>> {
        T::as_array(self).map(|a| a.view())
    }

    /// Take the typed array, if the dtype matches.
    pub fn into_array<T: BlockElement>(self) -> Result<ArrayD<T>, Block> {
        T::from_block(self)
    }

    /// Convert to another dtype with NumPy `astype` semantics; free if the
    /// dtype already matches.
    pub fn astype(self, dtype: DType) -> Block {
        if self.dtype() == dtype {
            return self;
        }
        with_block!(&self, a, S => with_dtype!(dtype, T => Block::from(a.mapv(|v: S| v.cast::<T>()))))
    }

    /// The elements as f64, in C order (for tests and small results).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_block!(self, a, T => a.iter().map(|&v| v.to_f64()).collect())
    }

    /// Make the storage C-contiguous (standard layout), copying only if needed.
    pub fn into_standard_layout(self) -> Block {
        with_block!(self, a, T => {
            if a.is_standard_layout() {
                Block::from(a)
            } else {
                Block::from(a.as_standard_layout().into_owned())
            }
        })
    }

    /// Reshape (the element count must match); copies only if not contiguous.
    ///
    /// # Panics
    /// If the element counts differ (a caller bug, never user input).
    pub fn into_shape(self, shape: &[usize]) -> Block {
        with_block!(self, a, T => {
            let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
            #[allow(clippy::expect_used)]
            Block::from(a.into_shape_with_order(IxDyn(shape)).expect("reshape keeps the element count"))
        })
    }

    /// The native-endian bytes of the elements in C order.
    pub fn to_ne_bytes(&self) -> Vec<u8> {
        self.with_ne_bytes(<[u8]>::to_vec)
    }

    /// Lend the native-endian bytes of the elements in C order to `f`:
    /// the block's own buffer when it is in standard layout (no copy, so
    /// writing a block out needs no second buffer), a C-order copy
    /// otherwise.
    pub fn with_ne_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        with_block!(self, a, T => {
            let copy;
            let s = match a.as_slice() {
                Some(s) => s,
                None => {
                    copy = a.as_standard_layout().into_owned();
                    #[allow(clippy::expect_used)]
                    copy.as_slice().expect("standard layout")
                }
            };
            // SAFETY: every element type is plain old data (integers, floats,
            // bool) with no padding; reading its bytes is always valid.
            let bytes = unsafe {
                std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s))
            };
            f(bytes)
        })
    }

    /// Build a block by letting `fill` write its native-endian bytes in C
    /// order straight into the block's own buffer (one pass: e.g. a file
    /// read with no intermediate copy). Not for bool, whose bytes must be
    /// checked; use [`from_ne_bytes`](Block::from_ne_bytes) there.
    ///
    /// # Errors
    /// Whatever `fill` returns.
    ///
    /// # Panics
    /// If `dtype` is bool (a caller bug).
    pub fn from_ne_fill<E>(
        dtype: DType,
        shape: &[usize],
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Block, E> {
        assert!(dtype != DType::Bool, "from_ne_fill does not take bool");
        let n: usize = shape.iter().product();
        with_dtype!(dtype, T => {
            let mut v: Vec<T> = vec![T::default(); n];
            // SAFETY: T is a plain numeric type (bool excluded above): any
            // bytes written form valid values, and the slice covers exactly
            // the vector's initialised elements.
            let bytes = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v.as_slice())) };
            fill(bytes)?;
            #[allow(clippy::expect_used)]
            Ok(Block::from(ArrayD::from_shape_vec(IxDyn(shape), v).expect("length matches")))
        })
    }

    /// [`from_ne_fill`](Block::from_ne_fill) without zeroing the buffer
    /// first: `fill` gets the block's uninitialised bytes, so a file read
    /// writes each byte exactly once.
    ///
    /// # Safety
    /// When `fill` returns `Ok`, it must have written every byte of the
    /// buffer it was given.
    ///
    /// # Errors
    /// Whatever `fill` returns.
    ///
    /// # Panics
    /// If `dtype` is bool (a caller bug).
    pub unsafe fn from_ne_fill_uninit<E>(
        dtype: DType,
        shape: &[usize],
        fill: impl FnOnce(&mut [std::mem::MaybeUninit<u8>]) -> Result<(), E>,
    ) -> Result<Block, E> {
        assert!(
            dtype != DType::Bool,
            "from_ne_fill_uninit does not take bool"
        );
        let n: usize = shape.iter().product();
        with_dtype!(dtype, T => {
            let mut v: Vec<T> = Vec::with_capacity(n);
            let spare = v.spare_capacity_mut();
            // SAFETY: the spare capacity holds `n` uninitialised `T`s; seen
            // as bytes they are as many uninitialised bytes.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(
                    spare.as_mut_ptr().cast::<std::mem::MaybeUninit<u8>>(),
                    std::mem::size_of::<T>() * n,
                )
            };
            fill(bytes)?;
            // SAFETY: the caller guarantees `fill` wrote every byte, and any
            // bytes form a valid `T` (a plain number, bool excluded above).
            unsafe { v.set_len(n) };
            #[allow(clippy::expect_used)]
            Ok(Block::from(ArrayD::from_shape_vec(IxDyn(shape), v).expect("length matches")))
        })
    }

    /// Build a block from native-endian bytes in C order.
    ///
    /// Returns `None` if `bytes.len()` is not `product(shape) * dtype.size()`,
    /// or a bool byte is neither 0 nor 1.
    pub fn from_ne_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Option<Block> {
        let n: usize = shape.iter().product();
        if bytes.len() != n * dtype.size() {
            return None;
        }
        if dtype == DType::Bool {
            if bytes.iter().any(|&b| b > 1) {
                return None;
            }
            let v: Vec<bool> = bytes.iter().map(|&b| b == 1).collect();
            return ArrayD::from_shape_vec(IxDyn(shape), v)
                .ok()
                .map(Block::from);
        }
        Some(with_dtype!(dtype, T => {
            let mut v: Vec<T> = vec![T::default(); n];
            // SAFETY: T is a plain numeric type (bool handled above) for which
            // every bit pattern is valid; the lengths were checked to match.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
            }
            #[allow(clippy::expect_used)]
            Block::from(ArrayD::from_shape_vec(IxDyn(shape), v).expect("length checked"))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_lent_in_c_order_without_a_copy_when_contiguous() {
        let b = Block::from(ndarray::arr2(&[[1i32, 2, 3], [4, 5, 6]]).into_dyn());
        let ptr = b.view::<i32>().unwrap().as_ptr().cast::<u8>();
        b.with_ne_bytes(|bytes| {
            assert_eq!(
                bytes.as_ptr(),
                ptr,
                "a contiguous block lends its own buffer"
            );
            assert_eq!(bytes.len(), 24);
        });
        // A transposed block comes out in C order of its own shape.
        let t = Block::from(
            ndarray::arr2(&[[1i32, 2, 3], [4, 5, 6]])
                .reversed_axes()
                .into_dyn(),
        );
        let want: Vec<u8> = [1i32, 4, 2, 5, 3, 6]
            .iter()
            .flat_map(|x| x.to_ne_bytes())
            .collect();
        assert_eq!(t.with_ne_bytes(<[u8]>::to_vec), want);
        assert_eq!(t.to_ne_bytes(), want);
    }

    #[test]
    fn bytes_round_trip_every_dtype() {
        for dt in DType::ALL {
            let b = Block::full(dt, &[2, 3], 1.0);
            let bytes = b.to_ne_bytes();
            assert_eq!(bytes.len(), 6 * dt.size());
            let back = Block::from_ne_bytes(dt, &[2, 3], &bytes).unwrap();
            assert_eq!(back, b);
        }
        assert!(Block::from_ne_bytes(DType::F32, &[2], &[0u8; 7]).is_none());
    }

    #[test]
    fn astype_converts() {
        let b = Block::from(ndarray::arr1(&[1.9f64, -2.5]).into_dyn()).astype(DType::I32);
        assert_eq!(b, Block::from(ndarray::arr1(&[1i32, -2]).into_dyn()));
    }
}
