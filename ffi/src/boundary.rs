//! What crosses the boundary: status codes, backend ids, the panic guard and
//! the pointer helpers every entry point goes through.

use core::ffi::{CStr, c_char};

use envol::xts::{Backend, Error as XtsError};

/// Result of every fallible call. Numbers are stable and never reused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum envol_status {
    /// Success.
    ENVOL_OK = 0,
    /// A required pointer argument was NULL.
    ENVOL_ERR_NULL_POINTER = 1,
    /// The key is not 32 or 64 bytes.
    ENVOL_ERR_KEY_LENGTH = 2,
    /// The two halves of the XTS key are equal.
    ENVOL_ERR_WEAK_KEY = 3,
    /// The sector size is not a multiple of 16 in 16..=2^24.
    ENVOL_ERR_SECTOR_SIZE = 4,
    /// A length is out of range or not a whole number of sectors.
    ENVOL_ERR_LENGTH = 5,
    /// Input and output buffers overlap without being the same buffer.
    ENVOL_ERR_OVERLAP = 6,
    /// The run of sectors goes past sector 2^64 - 1.
    ENVOL_ERR_SECTOR_OVERFLOW = 7,
    /// The requested backend is not available on this CPU or build.
    ENVOL_ERR_BACKEND_UNAVAILABLE = 8,
    /// The context was never initialised, or was wiped.
    ENVOL_ERR_NOT_INITIALIZED = 9,
    /// An enum argument has a value the library does not know.
    ENVOL_ERR_INVALID_ARGUMENT = 10,
    /// A context pointer is not aligned as its type requires.
    ENVOL_ERR_ALIGNMENT = 11,
    /// A bug inside envol was caught at the boundary; nothing was written.
    ENVOL_ERR_INTERNAL = 12,
}

impl envol_status {
    const ALL: [envol_status; 13] = [
        envol_status::ENVOL_OK,
        envol_status::ENVOL_ERR_NULL_POINTER,
        envol_status::ENVOL_ERR_KEY_LENGTH,
        envol_status::ENVOL_ERR_WEAK_KEY,
        envol_status::ENVOL_ERR_SECTOR_SIZE,
        envol_status::ENVOL_ERR_LENGTH,
        envol_status::ENVOL_ERR_OVERLAP,
        envol_status::ENVOL_ERR_SECTOR_OVERFLOW,
        envol_status::ENVOL_ERR_BACKEND_UNAVAILABLE,
        envol_status::ENVOL_ERR_NOT_INITIALIZED,
        envol_status::ENVOL_ERR_INVALID_ARGUMENT,
        envol_status::ENVOL_ERR_ALIGNMENT,
        envol_status::ENVOL_ERR_INTERNAL,
    ];

    /// The status with this number, if there is one.
    pub fn from_raw(v: u32) -> Option<envol_status> {
        Self::ALL.into_iter().find(|s| *s as u32 == v)
    }

    /// The stable name as a C string.
    pub fn name_c(self) -> *const c_char {
        let s: &'static CStr = match self {
            envol_status::ENVOL_OK => c"ENVOL_OK",
            envol_status::ENVOL_ERR_NULL_POINTER => c"ENVOL_ERR_NULL_POINTER",
            envol_status::ENVOL_ERR_KEY_LENGTH => c"ENVOL_ERR_KEY_LENGTH",
            envol_status::ENVOL_ERR_WEAK_KEY => c"ENVOL_ERR_WEAK_KEY",
            envol_status::ENVOL_ERR_SECTOR_SIZE => c"ENVOL_ERR_SECTOR_SIZE",
            envol_status::ENVOL_ERR_LENGTH => c"ENVOL_ERR_LENGTH",
            envol_status::ENVOL_ERR_OVERLAP => c"ENVOL_ERR_OVERLAP",
            envol_status::ENVOL_ERR_SECTOR_OVERFLOW => c"ENVOL_ERR_SECTOR_OVERFLOW",
            envol_status::ENVOL_ERR_BACKEND_UNAVAILABLE => c"ENVOL_ERR_BACKEND_UNAVAILABLE",
            envol_status::ENVOL_ERR_NOT_INITIALIZED => c"ENVOL_ERR_NOT_INITIALIZED",
            envol_status::ENVOL_ERR_INVALID_ARGUMENT => c"ENVOL_ERR_INVALID_ARGUMENT",
            envol_status::ENVOL_ERR_ALIGNMENT => c"ENVOL_ERR_ALIGNMENT",
            envol_status::ENVOL_ERR_INTERNAL => c"ENVOL_ERR_INTERNAL",
        };
        s.as_ptr()
    }
}

impl From<XtsError> for envol_status {
    fn from(e: XtsError) -> Self {
        match e {
            XtsError::KeyLength => envol_status::ENVOL_ERR_KEY_LENGTH,
            XtsError::WeakKey => envol_status::ENVOL_ERR_WEAK_KEY,
            XtsError::SectorSize => envol_status::ENVOL_ERR_SECTOR_SIZE,
            XtsError::Length => envol_status::ENVOL_ERR_LENGTH,
            XtsError::SectorOverflow => envol_status::ENVOL_ERR_SECTOR_OVERFLOW,
            XtsError::BackendUnavailable => envol_status::ENVOL_ERR_BACKEND_UNAVAILABLE,
            _ => envol_status::ENVOL_ERR_INTERNAL,
        }
    }
}

/// A status passed *into* the library, as the raw integer C hands over:
/// any value is accepted and checked, so a stray number is never UB.
/// In the header it is spelled `envol_status`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct envol_status_arg(pub u32);

/// The XTS kernels, by number. `ENVOL_BACKEND_AUTO` picks the best one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum envol_backend {
    /// The best backend available on this CPU.
    ENVOL_BACKEND_AUTO = 0,
    /// Portable constant-time AES.
    ENVOL_BACKEND_SOFT = 1,
    /// AES-NI + PCLMULQDQ.
    ENVOL_BACKEND_AESNI = 2,
    /// AVX2 + VAES + VPCLMULQDQ.
    ENVOL_BACKEND_VAES256 = 3,
    /// AVX-512 + VAES + VPCLMULQDQ.
    ENVOL_BACKEND_VAES512 = 4,
    /// ARMv8 AES + PMULL.
    ENVOL_BACKEND_ARMV8 = 5,
}

impl From<Backend> for envol_backend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Soft => envol_backend::ENVOL_BACKEND_SOFT,
            Backend::Aesni => envol_backend::ENVOL_BACKEND_AESNI,
            Backend::Vaes256 => envol_backend::ENVOL_BACKEND_VAES256,
            Backend::Vaes512 => envol_backend::ENVOL_BACKEND_VAES512,
            Backend::Armv8 => envol_backend::ENVOL_BACKEND_ARMV8,
        }
    }
}

/// A backend id passed into the library as a raw integer (spelled
/// `envol_backend` in the header); unknown values are refused, never UB.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct envol_backend_arg(pub u32);

/// What a backend argument asks for.
pub(crate) enum BackendChoice {
    Auto,
    Fixed(Backend),
}

impl envol_backend_arg {
    pub(crate) fn choice(self) -> Option<BackendChoice> {
        Some(match self.0 {
            0 => BackendChoice::Auto,
            1 => BackendChoice::Fixed(Backend::Soft),
            2 => BackendChoice::Fixed(Backend::Aesni),
            3 => BackendChoice::Fixed(Backend::Vaes256),
            4 => BackendChoice::Fixed(Backend::Vaes512),
            5 => BackendChoice::Fixed(Backend::Armv8),
            _ => return None,
        })
    }
}

impl From<envol_backend> for envol_backend_arg {
    fn from(b: envol_backend) -> Self {
        envol_backend_arg(b as u32)
    }
}

impl From<envol_status> for envol_status_arg {
    fn from(s: envol_status) -> Self {
        envol_status_arg(s as u32)
    }
}

/// Runs an entry point's body; a panic becomes `$on_panic` instead of
/// unwinding into C. Firmware builds (`panic = "abort"`) have nothing to catch.
macro_rules! guard {
    ($on_panic:expr, $body:block) => {{
        #[cfg(feature = "std")]
        {
            match std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| $body)) {
                Ok(v) => v,
                Err(_) => $on_panic,
            }
        }
        #[cfg(not(feature = "std"))]
        {
            $body
        }
    }};
}
pub(crate) use guard;

/// Early return with a status from inside a guarded body.
macro_rules! try_status {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return envol_status::from(s),
        }
    };
}
pub(crate) use try_status;

/// A readable byte buffer from C, or `ENVOL_ERR_NULL_POINTER` /
/// `ENVOL_ERR_LENGTH`.
///
/// # Safety
/// If `ptr` is not NULL it must be valid for `len` reads for `'a`, and not
/// written through any other pointer meanwhile.
pub(crate) unsafe fn in_slice<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], envol_status> {
    if ptr.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    check_span(ptr as usize, len)?;
    // SAFETY: non-NULL, span checked to fit the address space; validity is
    // the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// Checks that `len` bytes from `addr` fit in the address space and in a
/// Rust slice (at most `isize::MAX` bytes).
pub(crate) fn check_span(addr: usize, len: usize) -> Result<(), envol_status> {
    if isize::try_from(len).is_err() || addr.checked_add(len).is_none() {
        return Err(envol_status::ENVOL_ERR_LENGTH);
    }
    Ok(())
}

/// Whether `[a, a+len)` and `[b, b+len)` overlap without being equal.
pub(crate) fn partial_overlap(a: usize, b: usize, len: usize) -> bool {
    a != b && len != 0 && a < b.wrapping_add(len) && b < a.wrapping_add(len)
}
