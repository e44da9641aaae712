//! ndstream-formats: storage formats as chunk sources and sinks.

pub mod spec;

pub use spec::{ArrayInfo, Codec, SinkSpec, StoreInfo, WriteMode, ZarrVersion};
