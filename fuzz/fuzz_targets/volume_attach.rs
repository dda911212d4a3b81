#![no_main]
//! Fuzz target `volume_attach`: see `envol_fuzz::volume_attach`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| envol_fuzz::volume_attach(data));
