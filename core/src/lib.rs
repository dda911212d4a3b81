//! envol: envelope encryption for block volumes.
//!
//! This crate is the `no_std` core. It owns the XTS-AES sector engine
//! ([`xts`]); later layers (wrapped data keys, the volume header, the
//! attach/detach lifecycle and the reference key service) build on it.
//!
//! Nothing here allocates unless the `alloc` feature asks for it, and nothing
//! reachable from the public API panics on any input.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

mod bytes;
pub mod envelope;
pub mod gate;
pub mod header;
pub mod kms;
pub mod volume;
pub mod xts;

pub use xts::{Backend, Error as XtsError, KeySize, Xts};

/// The atomics the gate uses (loom's, in the gate's model-checking test).
mod gate_atomics {
    pub(crate) use core::sync::atomic::{AtomicUsize, Ordering, fence};

    /// Waits a moment for another thread.
    pub(crate) fn spin() {
        #[cfg(feature = "std")]
        std::thread::yield_now();
        #[cfg(not(feature = "std"))]
        core::hint::spin_loop();
    }
}

/// The crate version, as Cargo knows it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
