#![no_main]
//! Fuzz target `sealed_store`: see `envol_fuzz::sealed_store`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::sealed_store(data));
