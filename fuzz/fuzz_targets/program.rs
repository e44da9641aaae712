#![no_main]
//! `ndstream_cli::fuzz::program` (see there for what the bytes mean).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ndstream_cli::fuzz::program(data));
