#![no_main]
//! Fuzz target `audit_verify`: see `envol_fuzz::audit_verify`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::audit_verify(data));
