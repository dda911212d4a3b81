#![no_main]
//! Fuzz target `xts_diff`: see `envol_fuzz::xts_diff`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::xts_diff(data));
