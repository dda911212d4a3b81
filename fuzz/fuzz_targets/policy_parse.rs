#![no_main]
//! Fuzz target `policy_parse`: see `envol_fuzz::policy_parse`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::policy_parse(data));
