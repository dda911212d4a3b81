//! What crosses the boundary: status codes, backend ids, the panic guard and
//! the pointer helpers every entry point goes through.

use core::ffi::{CStr, c_char};

use envol::kms::KmsError;
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
    /// Input and output buffers overlap without being the same buffer, or a
    /// buffer overlaps the context or volume struct it is passed with.
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
    /// The key policy and grants do not allow this principal this action.
    ENVOL_ERR_ACCESS_DENIED = 13,
    /// No master key (or grant) with that id.
    ENVOL_ERR_KEY_NOT_FOUND = 14,
    /// The master key is disabled.
    ENVOL_ERR_KEY_DISABLED = 15,
    /// The master key is scheduled for deletion.
    ENVOL_ERR_KEY_PENDING_DELETION = 16,
    /// The blob is not valid for this key service, was edited, or the
    /// encryption context is not the one it was made with (one error on
    /// purpose: it does not say which).
    ENVOL_ERR_INVALID_CIPHERTEXT = 17,
    /// An output buffer is too small.
    ENVOL_ERR_BUFFER_TOO_SMALL = 18,
    /// The key service could not be reached, failed, or answered nonsense;
    /// the call may be retried.
    ENVOL_ERR_KMS_UNAVAILABLE = 19,
    /// The audit trail could not record the call (so it was refused), or
    /// the audit chain does not verify.
    ENVOL_ERR_AUDIT_FAILED = 20,
    /// The key still protects volumes; deleting it needs an explicit force.
    ENVOL_ERR_KEY_IN_USE = 21,
    /// The key policy document is invalid.
    ENVOL_ERR_POLICY = 22,
    /// The sealed key store does not open: wrong root key, damaged, or a
    /// format this library does not read.
    ENVOL_ERR_SEALED_STORE = 23,
    /// The encryption context is invalid: more than 16 pairs, a repeated,
    /// empty, NULL or over-long key, a NULL or over-long value, or a string
    /// that is not UTF-8.
    ENVOL_ERR_CONTEXT = 24,
    /// The key id is invalid: over 64 bytes or not UTF-8 (any call), or,
    /// when creating a key, empty, with characters outside
    /// `[A-Za-z0-9._:/-]`, or already used. (Other calls report a well-formed
    /// id that names no key as `ENVOL_ERR_KEY_NOT_FOUND`.)
    ENVOL_ERR_KEY_ID = 25,
    /// A block-device callback failed (returned non-zero).
    ENVOL_ERR_IO = 26,
    /// The device holds no envol volume header (wrong magic in both copies).
    ENVOL_ERR_HEADER_BAD_MAGIC = 27,
    /// The volume header has a format version this library does not read.
    ENVOL_ERR_HEADER_VERSION = 28,
    /// The volume header has flags this library does not know.
    ENVOL_ERR_HEADER_FLAGS = 29,
    /// A volume header copy fails its checksum: torn or damaged.
    ENVOL_ERR_HEADER_CORRUPT = 30,
    /// Neither volume header copy is readable.
    ENVOL_ERR_HEADER_BOTH_CORRUPT = 31,
    /// A volume header field is out of range or inconsistent (or a wrapped
    /// key does not fit the cipher, or a header would not fit its slot).
    ENVOL_ERR_HEADER_MALFORMED = 32,
    /// The volume header's MAC does not verify under the unwrapped data key:
    /// the header was edited after it was written.
    ENVOL_ERR_HEADER_TAMPERED = 33,
    /// The sectors asked for lie outside the volume.
    ENVOL_ERR_OUT_OF_RANGE = 34,
    /// The volume was retired: attaching is refused.
    ENVOL_ERR_VOLUME_RETIRED = 35,
    /// The volume is attached, and the call needs it detached (or empty).
    ENVOL_ERR_VOLUME_ATTACHED = 36,
    /// The volume is detached (holds no key), and the call needs it attached
    /// (or empty).
    ENVOL_ERR_VOLUME_DETACHED = 37,
    /// The data key does not fit the volume's cipher suite (a key service
    /// returned a key of the other size, or a key passed in has the wrong
    /// size), or a rewrap's new wrapped key does not hold the volume's data
    /// key (the header is then left as it was).
    ENVOL_ERR_KEY_MISMATCH = 38,
    /// Volume parameters passed in are out of range: sector size not a power
    /// of two in 512..=65536, data offset below 8192 or not a multiple of
    /// 4096 and of the sector size, volume size 0 or not a multiple of the
    /// sector size, or offset + size past 2^64 - 1; or, when creating, an
    /// all-zero volume id (use random ids).
    ENVOL_ERR_VOLUME_PARAMS = 39,
    /// A quota of the key service would be exceeded (keys, grants, the
    /// size of its sealed store).
    ENVOL_ERR_LIMIT_EXCEEDED = 40,
    /// The device already holds an envol volume (either header copy):
    /// creating one there would destroy its data key, and so its data. Use
    /// `envol_volume_overwrite` to do that on purpose.
    ENVOL_ERR_VOLUME_EXISTS = 41,
    /// The volume's header names another volume id than the one the caller
    /// expects (a copied or foreign header).
    ENVOL_ERR_WRONG_VOLUME = 42,
    /// The volume's lease ran out, or its renewal was refused by the key
    /// service: its data key was wiped. Detach, and attach again once the
    /// key service allows it.
    ENVOL_ERR_LEASE_EXPIRED = 43,
}

impl envol_status {
    pub(crate) const ALL: [envol_status; 44] = [
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
        envol_status::ENVOL_ERR_ACCESS_DENIED,
        envol_status::ENVOL_ERR_KEY_NOT_FOUND,
        envol_status::ENVOL_ERR_KEY_DISABLED,
        envol_status::ENVOL_ERR_KEY_PENDING_DELETION,
        envol_status::ENVOL_ERR_INVALID_CIPHERTEXT,
        envol_status::ENVOL_ERR_BUFFER_TOO_SMALL,
        envol_status::ENVOL_ERR_KMS_UNAVAILABLE,
        envol_status::ENVOL_ERR_AUDIT_FAILED,
        envol_status::ENVOL_ERR_KEY_IN_USE,
        envol_status::ENVOL_ERR_POLICY,
        envol_status::ENVOL_ERR_SEALED_STORE,
        envol_status::ENVOL_ERR_CONTEXT,
        envol_status::ENVOL_ERR_KEY_ID,
        envol_status::ENVOL_ERR_IO,
        envol_status::ENVOL_ERR_HEADER_BAD_MAGIC,
        envol_status::ENVOL_ERR_HEADER_VERSION,
        envol_status::ENVOL_ERR_HEADER_FLAGS,
        envol_status::ENVOL_ERR_HEADER_CORRUPT,
        envol_status::ENVOL_ERR_HEADER_BOTH_CORRUPT,
        envol_status::ENVOL_ERR_HEADER_MALFORMED,
        envol_status::ENVOL_ERR_HEADER_TAMPERED,
        envol_status::ENVOL_ERR_OUT_OF_RANGE,
        envol_status::ENVOL_ERR_VOLUME_RETIRED,
        envol_status::ENVOL_ERR_VOLUME_ATTACHED,
        envol_status::ENVOL_ERR_VOLUME_DETACHED,
        envol_status::ENVOL_ERR_KEY_MISMATCH,
        envol_status::ENVOL_ERR_VOLUME_PARAMS,
        envol_status::ENVOL_ERR_LIMIT_EXCEEDED,
        envol_status::ENVOL_ERR_VOLUME_EXISTS,
        envol_status::ENVOL_ERR_WRONG_VOLUME,
        envol_status::ENVOL_ERR_LEASE_EXPIRED,
    ];

    /// The status with this number, if there is one.
    pub fn from_raw(v: u32) -> Option<envol_status> {
        Self::ALL.into_iter().find(|s| *s as u32 == v)
    }

    /// The stable name as a C string.
    pub fn name_c(self) -> *const c_char {
        self.name_cstr().as_ptr()
    }

    /// The stable name, e.g. `c"ENVOL_ERR_WEAK_KEY"`.
    pub(crate) fn name_cstr(self) -> &'static CStr {
        match self {
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
            envol_status::ENVOL_ERR_ACCESS_DENIED => c"ENVOL_ERR_ACCESS_DENIED",
            envol_status::ENVOL_ERR_KEY_NOT_FOUND => c"ENVOL_ERR_KEY_NOT_FOUND",
            envol_status::ENVOL_ERR_KEY_DISABLED => c"ENVOL_ERR_KEY_DISABLED",
            envol_status::ENVOL_ERR_KEY_PENDING_DELETION => c"ENVOL_ERR_KEY_PENDING_DELETION",
            envol_status::ENVOL_ERR_INVALID_CIPHERTEXT => c"ENVOL_ERR_INVALID_CIPHERTEXT",
            envol_status::ENVOL_ERR_BUFFER_TOO_SMALL => c"ENVOL_ERR_BUFFER_TOO_SMALL",
            envol_status::ENVOL_ERR_KMS_UNAVAILABLE => c"ENVOL_ERR_KMS_UNAVAILABLE",
            envol_status::ENVOL_ERR_AUDIT_FAILED => c"ENVOL_ERR_AUDIT_FAILED",
            envol_status::ENVOL_ERR_KEY_IN_USE => c"ENVOL_ERR_KEY_IN_USE",
            envol_status::ENVOL_ERR_POLICY => c"ENVOL_ERR_POLICY",
            envol_status::ENVOL_ERR_SEALED_STORE => c"ENVOL_ERR_SEALED_STORE",
            envol_status::ENVOL_ERR_CONTEXT => c"ENVOL_ERR_CONTEXT",
            envol_status::ENVOL_ERR_KEY_ID => c"ENVOL_ERR_KEY_ID",
            envol_status::ENVOL_ERR_IO => c"ENVOL_ERR_IO",
            envol_status::ENVOL_ERR_HEADER_BAD_MAGIC => c"ENVOL_ERR_HEADER_BAD_MAGIC",
            envol_status::ENVOL_ERR_HEADER_VERSION => c"ENVOL_ERR_HEADER_VERSION",
            envol_status::ENVOL_ERR_HEADER_FLAGS => c"ENVOL_ERR_HEADER_FLAGS",
            envol_status::ENVOL_ERR_HEADER_CORRUPT => c"ENVOL_ERR_HEADER_CORRUPT",
            envol_status::ENVOL_ERR_HEADER_BOTH_CORRUPT => c"ENVOL_ERR_HEADER_BOTH_CORRUPT",
            envol_status::ENVOL_ERR_HEADER_MALFORMED => c"ENVOL_ERR_HEADER_MALFORMED",
            envol_status::ENVOL_ERR_HEADER_TAMPERED => c"ENVOL_ERR_HEADER_TAMPERED",
            envol_status::ENVOL_ERR_OUT_OF_RANGE => c"ENVOL_ERR_OUT_OF_RANGE",
            envol_status::ENVOL_ERR_VOLUME_RETIRED => c"ENVOL_ERR_VOLUME_RETIRED",
            envol_status::ENVOL_ERR_VOLUME_ATTACHED => c"ENVOL_ERR_VOLUME_ATTACHED",
            envol_status::ENVOL_ERR_VOLUME_DETACHED => c"ENVOL_ERR_VOLUME_DETACHED",
            envol_status::ENVOL_ERR_KEY_MISMATCH => c"ENVOL_ERR_KEY_MISMATCH",
            envol_status::ENVOL_ERR_VOLUME_PARAMS => c"ENVOL_ERR_VOLUME_PARAMS",
            envol_status::ENVOL_ERR_LIMIT_EXCEEDED => c"ENVOL_ERR_LIMIT_EXCEEDED",
            envol_status::ENVOL_ERR_VOLUME_EXISTS => c"ENVOL_ERR_VOLUME_EXISTS",
            envol_status::ENVOL_ERR_WRONG_VOLUME => c"ENVOL_ERR_WRONG_VOLUME",
            envol_status::ENVOL_ERR_LEASE_EXPIRED => c"ENVOL_ERR_LEASE_EXPIRED",
        }
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

impl From<KmsError> for envol_status {
    fn from(e: KmsError) -> Self {
        match e {
            KmsError::AccessDenied => envol_status::ENVOL_ERR_ACCESS_DENIED,
            KmsError::NotFound => envol_status::ENVOL_ERR_KEY_NOT_FOUND,
            KmsError::Disabled => envol_status::ENVOL_ERR_KEY_DISABLED,
            KmsError::PendingDeletion => envol_status::ENVOL_ERR_KEY_PENDING_DELETION,
            KmsError::InvalidCiphertext => envol_status::ENVOL_ERR_INVALID_CIPHERTEXT,
            KmsError::InvalidArgument => envol_status::ENVOL_ERR_INVALID_ARGUMENT,
            KmsError::BufferTooSmall => envol_status::ENVOL_ERR_BUFFER_TOO_SMALL,
            KmsError::Unavailable => envol_status::ENVOL_ERR_KMS_UNAVAILABLE,
            KmsError::AuditFailed => envol_status::ENVOL_ERR_AUDIT_FAILED,
            KmsError::KeyInUse => envol_status::ENVOL_ERR_KEY_IN_USE,
            KmsError::LimitExceeded => envol_status::ENVOL_ERR_LIMIT_EXCEEDED,
            KmsError::VolumeRetired => envol_status::ENVOL_ERR_VOLUME_RETIRED,
            // A variant newer than this mapping: a gap in envol itself.
            _ => envol_status::ENVOL_ERR_INTERNAL,
        }
    }
}

/// What a status returned by a key-service callback means to the [`Kms`]
/// trait. Unknown numbers, and known ones no key service should return,
/// mean the service failed: `Unavailable`.
///
/// [`Kms`]: envol::kms::Kms
pub(crate) fn kms_result(status: envol_status_arg) -> Result<(), KmsError> {
    match envol_status::from_raw(status.0) {
        Some(envol_status::ENVOL_OK) => Ok(()),
        Some(envol_status::ENVOL_ERR_ACCESS_DENIED) => Err(KmsError::AccessDenied),
        Some(envol_status::ENVOL_ERR_KEY_NOT_FOUND) => Err(KmsError::NotFound),
        Some(envol_status::ENVOL_ERR_KEY_DISABLED) => Err(KmsError::Disabled),
        Some(envol_status::ENVOL_ERR_KEY_PENDING_DELETION) => Err(KmsError::PendingDeletion),
        Some(envol_status::ENVOL_ERR_INVALID_CIPHERTEXT) => Err(KmsError::InvalidCiphertext),
        Some(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL) => Err(KmsError::BufferTooSmall),
        Some(envol_status::ENVOL_ERR_AUDIT_FAILED) => Err(KmsError::AuditFailed),
        Some(envol_status::ENVOL_ERR_KEY_IN_USE) => Err(KmsError::KeyInUse),
        Some(envol_status::ENVOL_ERR_LIMIT_EXCEEDED) => Err(KmsError::LimitExceeded),
        Some(envol_status::ENVOL_ERR_VOLUME_RETIRED) => Err(KmsError::VolumeRetired),
        Some(
            envol_status::ENVOL_ERR_INVALID_ARGUMENT
            | envol_status::ENVOL_ERR_NULL_POINTER
            | envol_status::ENVOL_ERR_LENGTH
            | envol_status::ENVOL_ERR_KEY_LENGTH
            | envol_status::ENVOL_ERR_CONTEXT
            | envol_status::ENVOL_ERR_KEY_ID,
        ) => Err(KmsError::InvalidArgument),
        _ => Err(KmsError::Unavailable),
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

/// [`guard!`] for entry points that handle key material: the body runs in
/// a frame of its own, and afterwards the stack it used is overwritten
/// (Rust moves leave copies of keys and round keys in dead stack slots that
/// no `Drop` reaches).
macro_rules! guard_secret {
    ($on_panic:expr, $body:block) => {{
        let result = $crate::boundary::apart(|| $crate::boundary::guard!($on_panic, $body));
        $crate::boundary::scrub_stack();
        result
    }};
}
pub(crate) use guard_secret;

/// Runs `f` in a frame below the caller's, never inlined into it, so that
/// what `f` leaves on the stack lies where [`scrub_stack`] then writes.
#[inline(never)]
pub(crate) fn apart<R>(f: impl FnOnce() -> R) -> R {
    core::hint::black_box(f())
}

/// Bytes of stack [`scrub_stack`] overwrites below the caller: more than
/// any key-handling call of this library uses on hosted builds; on
/// bare-metal builds, what a small firmware stack can spare.
#[cfg(feature = "std")]
pub(crate) const SCRUB_BYTES: usize = 64 * 1024;
/// See above.
#[cfg(not(feature = "std"))]
pub(crate) const SCRUB_BYTES: usize = 16 * 1024;

/// Overwrites [`SCRUB_BYTES`] of the stack below the caller's frame with
/// zeroes (volatile writes, not optimised away).
#[inline(never)]
pub(crate) fn scrub_stack() {
    let mut area = core::mem::MaybeUninit::<[u8; SCRUB_BYTES]>::uninit();
    // SAFETY: zeroes are a valid `[u8; N]`; `zeroize_flat_type` writes every
    // byte of the area with volatile stores before anything reads it.
    unsafe { zeroize::zeroize_flat_type(area.as_mut_ptr()) };
    core::hint::black_box(&area);
}

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

/// Why a C string was refused by [`in_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrError {
    /// The pointer is NULL.
    Null,
    /// No NUL within the first `max + 1` bytes.
    TooLong,
    /// Not UTF-8.
    NotUtf8,
}

/// A NUL-terminated UTF-8 string from C of at most `max` bytes (not counting
/// the NUL). Reads at most `max + 1` bytes, so an over-long or unterminated
/// string is refused without reading on past it.
///
/// # Safety
/// If `ptr` is not NULL it must point to a NUL-terminated string (or to at
/// least `max + 1` readable bytes) that is not written during `'a`.
pub(crate) unsafe fn in_str<'a>(ptr: *const c_char, max: usize) -> Result<&'a str, StrError> {
    if ptr.is_null() {
        return Err(StrError::Null);
    }
    let p = ptr.cast::<u8>();
    let mut len = 0;
    loop {
        // SAFETY: bytes before index `len` were not NUL, so per the contract
        // byte `len` (at most `max`) is still inside the string or the bound.
        if unsafe { p.add(len).read() } == 0 {
            break;
        }
        if len == max {
            return Err(StrError::TooLong);
        }
        len += 1;
    }
    // SAFETY: the `len` bytes before the NUL were just read through `p`.
    let bytes = unsafe { core::slice::from_raw_parts(p, len) };
    core::str::from_utf8(bytes).map_err(|_| StrError::NotUtf8)
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

/// Whether the address ranges `[a, a+alen)` and `[b, b+blen)` intersect.
pub(crate) fn ranges_overlap(a: usize, alen: usize, b: usize, blen: usize) -> bool {
    alen != 0 && blen != 0 && a < b.wrapping_add(blen) && b < a.wrapping_add(alen)
}
