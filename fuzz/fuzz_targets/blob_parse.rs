#![no_main]
//! Fuzz target `blob_parse`: see `envol_fuzz::blob_parse`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::blob_parse(data));
