#![no_main]
//! Fuzz target `kmip_ttlv`: see `envol_fuzz::kmip_ttlv`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::kmip_ttlv(data));
