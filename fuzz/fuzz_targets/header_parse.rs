#![no_main]
//! Fuzz target `header_parse`: see `envol_fuzz::header_parse`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::header_parse(data));
