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
    /// A quota of the service would be exceeded (keys, grants, the size of
    /// its sealed store).
    LimitExceeded,
    /// The volume this encryption context names was retired: the service
    /// keeps a tombstone and refuses its data key.
    VolumeRetired,
}

impl KmsError {
    /// Every error, in the order of their stable one-byte codes in the
    /// audit log's binary form: append only.
    pub const ALL: [KmsError; 12] = [
        KmsError::AccessDenied,
        KmsError::NotFound,
        KmsError::Disabled,
        KmsError::PendingDeletion,
        KmsError::InvalidCiphertext,
        KmsError::InvalidArgument,
        KmsError::BufferTooSmall,
        KmsError::Unavailable,
        KmsError::AuditFailed,
        KmsError::KeyInUse,
        KmsError::LimitExceeded,
        KmsError::VolumeRetired,
    ];

    /// The stable name of the error, spelled as the C ABI's status of the
    /// same meaning (`"ENVOL_ERR_ACCESS_DENIED"`, ...): what audit lines
    /// and the command line print.
    pub fn status_name(self) -> &'static str {
        match self {
            KmsError::AccessDenied => "ENVOL_ERR_ACCESS_DENIED",
            KmsError::NotFound => "ENVOL_ERR_KEY_NOT_FOUND",
            KmsError::Disabled => "ENVOL_ERR_KEY_DISABLED",
            KmsError::PendingDeletion => "ENVOL_ERR_KEY_PENDING_DELETION",
            KmsError::InvalidCiphertext => "ENVOL_ERR_INVALID_CIPHERTEXT",
            KmsError::InvalidArgument => "ENVOL_ERR_INVALID_ARGUMENT",
            KmsError::BufferTooSmall => "ENVOL_ERR_BUFFER_TOO_SMALL",
            KmsError::Unavailable => "ENVOL_ERR_KMS_UNAVAILABLE",
            KmsError::AuditFailed => "ENVOL_ERR_AUDIT_FAILED",
            KmsError::KeyInUse => "ENVOL_ERR_KEY_IN_USE",
            KmsError::LimitExceeded => "ENVOL_ERR_LIMIT_EXCEEDED",
            KmsError::VolumeRetired => "ENVOL_ERR_VOLUME_RETIRED",
        }
    }
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
            KmsError::LimitExceeded => "key service limit exceeded",
            KmsError::VolumeRetired => "volume retired",
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

    /// Asks the service, not a cache in front of it, whether `principal`
    /// may still unwrap `blob` under `context`: what renews an attached
    /// volume's lease. The default unwraps the data key and wipes it at
    /// once, so the service authorizes (and audits) a Decrypt.
    fn check_decrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<(), KmsError> {
        self.decrypt_data_key(principal, blob, context).map(drop)
    }

    /// Records that the volume named by `context` was retired, so that its
    /// data key (`blob`) is never unwrapped again for that context, whatever
    /// old copy of the header turns up. `Ok(true)` if the service keeps such
    /// a tombstone; `Ok(false)` if it cannot (the default: AWS KMS and
    /// PKCS#11 tokens have no per-context revocation), in which case only
    /// the header records the retirement.
    fn retire_context(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<bool, KmsError> {
        let _ = (principal, blob, context);
        Ok(false)
    }
}

/// Seconds since the Unix epoch, injected so that key deletion windows,
/// rotation and volume leases run without an OS and are tested without
/// sleeping.
pub trait Clock {
    /// The current time.
    fn now(&self) -> u64;
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
    Entropy, GrantConstraint, GrantInfo, KeyInfo, KeyState, LocalKms, MAX_GRANTS_PER_KEY, MAX_KEYS,
    MAX_LOG_IN_MEMORY, MAX_PRINCIPAL, check_principal,
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
