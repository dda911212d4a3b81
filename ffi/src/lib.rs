//! The C ABI of envol: `libenvol.a`, `libenvol.so` and `include/envol.h`.
//!
//! Conventions (see `include/envol.h`): every symbol starts with `envol_`;
//! every fallible call returns an [`envol_status`]; nothing panics or unwinds
//! into C (hosted builds catch panics and return `ENVOL_ERR_INTERNAL`);
//! a failed call writes nothing to its outputs; contexts are caller-allocated
//! structs of a size fixed in the header; pointers are checked for NULL.
//!
//! Parts: the sector engine (`xts.rs`: `envol_xts_*`, `envol_backend_*`) and
//! the key service (`kms.rs`: encryption contexts, the `envol_kms_callbacks`
//! table a hypervisor plugs its key service into, `envol_xts_init_from_blob`,
//! and on hosted builds the reference service `envol_local_kms_*`), and
//! volumes (`volume.rs`: the `envol_block_device` table, the caller-allocated
//! `envol_volume` with its create/open/attach/read/write/rewrap/detach
//! lifecycle, and the low-level `envol_header_*` calls for hypervisors that
//! do their own I/O).
#![cfg_attr(not(feature = "std"), no_std)]
#![allow(non_camel_case_types)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod boundary;
// The engine first: cbindgen writes the header in this order.
mod xts;
// The key service, built on the engine.
mod kms;
// What every C key-service handle shares, and the reference service.
#[cfg(feature = "std")]
mod audit;
#[cfg(feature = "std")]
mod local_kms;
#[cfg(feature = "std")]
mod service;
// Volumes: the high-level lifecycle, its data path, and the low-level
// header calls.
mod header;
mod volume;
mod volume_io;
// Raw-master-key wrap/unwrap for firmware without a key service.
mod envelope;

#[cfg(feature = "std")]
pub use audit::*;
pub use boundary::{envol_backend, envol_backend_arg, envol_status, envol_status_arg};
pub use envelope::*;
pub use header::*;
pub use kms::*;
#[cfg(feature = "std")]
pub use local_kms::*;
pub use volume::*;
pub use volume_io::*;
pub use xts::*;
/// AWS KMS and PKCS#11 key services (hosted builds, feature `remote`).
#[cfg(feature = "remote")]
mod remote;
#[cfg(feature = "remote")]
pub use remote::*;

use core::ffi::c_char;

/// The library version as a NUL-terminated string, e.g. "0.1.0".
#[unsafe(no_mangle)]
pub extern "C" fn envol_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The stable name of a status code, e.g. "ENVOL_ERR_WEAK_KEY", or
/// "ENVOL_ERR_UNKNOWN" for a value no version of envol has used.
#[unsafe(no_mangle)]
pub extern "C" fn envol_status_name(status: envol_status_arg) -> *const c_char {
    match envol_status::from_raw(status.0) {
        Some(s) => s.name_c(),
        None => c"ENVOL_ERR_UNKNOWN".as_ptr(),
    }
}

#[cfg(test)]
mod tests;

/// Firmware builds (`--no-default-features`, `panic = "abort"`): nothing in
/// envol panics on any input, but if a bug ever did, the firmware's
/// `envol_panic_hook` runs (log, reset); it must not return.
#[cfg(all(not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    unsafe extern "C" {
        /// Provided by the firmware.
        fn envol_panic_hook() -> !;
    }
    // SAFETY: the firmware links a function of this name that never returns
    // (documented in envol.h and docs/firmware.md).
    unsafe { envol_panic_hook() }
}
