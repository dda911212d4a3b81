#![no_main]
//! Fuzz target `header_parse_fixed`: see `envol_fuzz::header_parse_fixed`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::header_parse_fixed(data));
