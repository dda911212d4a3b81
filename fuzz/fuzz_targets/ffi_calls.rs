#![no_main]
//! Fuzz target `ffi_calls`: see `envol_fuzz::ffi_calls`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::ffi_calls(data));
