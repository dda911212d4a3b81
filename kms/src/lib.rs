//! Key services for envol beyond the reference `LocalKms`.
//!
//! Each implements [`envol::kms::Kms`], so volumes, the C ABI and the
//! examples run on any of them unchanged:
//!
//! - `aws::AwsKms` (feature `aws`): AWS KMS, or any endpoint that speaks
//!   its JSON API, SigV4-signed. Master keys stay in AWS; envol sends data
//!   keys to wrap and wrapped blobs to unwrap, with the volume's encryption
//!   context.
//! - `pkcs11::Pkcs11Kms` (feature `pkcs11`): master keys are AES-256 key
//!   objects inside a PKCS#11 token, sensitive and non-extractable; data keys
//!   are wrapped and unwrapped by the token with AES-GCM, the encryption
//!   context as associated data.
//! - `cache::CachingKms`: an optional, bounded cache of unwrapped data keys
//!   in front of any service, so a boot storm does not hammer it.
//!
//! Blobs from every service use envol's framing (`EVWK`, see
//! [`envol::envelope::Algorithm`]), so a header says which kind of service
//! can open it and a blob handed to the wrong kind is refused.

#![forbid(unsafe_code)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod cache;
#[cfg(feature = "kmip")]
pub mod kmip;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
#[cfg(any(feature = "aws", feature = "kmip"))]
pub mod retry;
