#![no_main]
//! Fuzz target `context_encode`: see `envol_fuzz::context_encode`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::context_encode(data));
