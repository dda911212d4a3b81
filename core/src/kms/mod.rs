//! The hypervisor's view of a key service.
//!
//! [`Kms`] is what the rest of envol calls, whatever sits behind it: the
//! reference key service, a callback table from C, or a network service.
//! Every call names the calling principal and the encryption context; master
//! keys never cross this interface, only data keys and wrapped blobs.

use core::fmt;

use crate::envelope::{Context, DataKey};
use crate::xts::KeySize;

/// Why a key service refused or failed a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KmsError {
    /// The key policy and grants do not allow this principal this action.
    AccessDenied,
    /// No master key with that id (or alias).
    NotFound,
    /// The master key is disabled.
    Disabled,
    /// The master key is scheduled for deletion (or deleted).
    PendingDeletion,
    /// The blob is not valid for this service, was edited, or the encryption
    /// context is not the one it was made with — deliberately one error.
    InvalidCiphertext,
    /// An argument breaks a bound (context, key id, secret size).
    InvalidArgument,
    /// An output buffer is too small.
    BufferTooSmall,
    /// The service could not be reached or failed; the call may be retried.
    Unavailable,
    /// The audit sink refused the event, so the call was refused (fail closed).
    AuditFailed,
    /// The key still protects volumes; deleting it needs an explicit force.
    KeyInUse,
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KmsError::AccessDenied => "access denied",
            KmsError::NotFound => "key not found",
            KmsError::Disabled => "key disabled",
            KmsError::PendingDeletion => "key pending deletion",
            KmsError::InvalidCiphertext => "invalid ciphertext or encryption context",
            KmsError::InvalidArgument => "invalid argument",
            KmsError::BufferTooSmall => "output buffer too small",
            KmsError::Unavailable => "key service unavailable",
            KmsError::AuditFailed => "audit sink failed; call refused",
            KmsError::KeyInUse => "key still protects volumes",
        })
    }
}

impl core::error::Error for KmsError {}

/// A key service as the hypervisor sees it.
///
/// Blobs are written into caller buffers ([`crate::envelope::MAX_BLOB`]
/// bytes always suffice) and their length returned, so no call allocates.
pub trait Kms {
    /// A fresh data key of `size`, in plaintext and wrapped under `key_id`
    /// bound to `context` (AWS: GenerateDataKey).
    fn generate_data_key(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError>;

    /// Only the wrapped form of a fresh data key
    /// (AWS: GenerateDataKeyWithoutPlaintext).
    fn generate_data_key_without_plaintext(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError>;

    /// Unwraps a data key blob made under `context` (AWS: Decrypt).
    fn decrypt_data_key(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<DataKey, KmsError>;

    /// Re-wraps a blob under another master key and context without the
    /// plaintext leaving the service (AWS: ReEncrypt).
    fn re_encrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        source_context: &Context<'_>,
        dest_key_id: &str,
        dest_context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError>;

    /// Encrypts a small secret (1..=4096 bytes) (AWS: Encrypt).
    fn encrypt(
        &mut self,
        principal: &str,
        key_id: &str,
        context: &Context<'_>,
        plaintext: &[u8],
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError>;

    /// Decrypts a small secret into `out`; returns its length (AWS: Decrypt).
    fn decrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError>;
}

#[cfg(feature = "alloc")]
pub mod audit;
#[cfg(feature = "alloc")]
mod local;
#[cfg(feature = "alloc")]
pub mod policy;
#[cfg(feature = "alloc")]
mod sealed;

#[cfg(feature = "alloc")]
pub use local::{
    Clock, Entropy, GrantConstraint, GrantInfo, KeyInfo, KeyState, LocalKms, MAX_LOG_IN_MEMORY,
};
#[cfg(feature = "alloc")]
pub use sealed::{MAX_SEALED, SealError};

/// Randomness from the operating system (`std` builds).
#[cfg(feature = "std")]
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

#[cfg(feature = "std")]
impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KmsError> {
        getrandom::fill(buf).map_err(|_| KmsError::Unavailable)
    }
}

/// The system clock, in seconds since the Unix epoch (`std` builds).
#[cfg(feature = "std")]
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[cfg(feature = "std")]
impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
