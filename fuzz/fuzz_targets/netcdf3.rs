#![no_main]
//! `ndstream_formats::fuzz::netcdf3_file` (see there for what the bytes mean).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ndstream_formats::fuzz::netcdf3_file(data));
