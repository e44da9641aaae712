//! Integration tests of the formats crate: one binary (see STYLE.md habit 11).

#[cfg(feature = "hdf5")]
mod hdf5;
