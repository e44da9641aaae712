#![no_main]
//! `ndstream_cli::fuzz::expr` (see there for what the bytes mean).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ndstream_cli::fuzz::expr(data));
