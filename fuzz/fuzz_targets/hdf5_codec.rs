#![no_main]
//! `ndstream_formats::fuzz::hdf5_codec` (see there for what the bytes mean).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ndstream_formats::fuzz::hdf5_codec(data));
