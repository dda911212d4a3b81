//! KMIP key servers (feature `kmip`): master keys are AES-256 objects
//! created and kept on the server; envol asks the server to encrypt and
//! decrypt data keys with them and never fetches them.
//!
//! # Protocol
//!
//! KMIP 1.4 TTLV (our own codec, [`ttlv`]: the crates that encode TTLV
//! stop at KMIP 1.2, which has no authenticated encryption fields, or bring
//! a second TLS stack and an async runtime) over TLS 1.2 or 1.3 with a
//! client certificate (rustls). One connection is kept open between calls.
//!
//! # Wrapping
//!
//! A data key is drawn on this host (`getrandom`) and sent to the server's
//! Encrypt with AES-GCM, a fresh random 96-bit nonce, a 128-bit tag and as
//! authenticated additional data the blob's own header followed by the
//! volume's canonical encryption context — the layout of envol's software
//! and PKCS#11 blobs, under [`Algorithm::KmipAes256Gcm`]. Decrypt sends the
//! same associated data, so the server refuses a blob under another
//! volume's context, an edited blob, or one with another key's name. The
//! tag must be 16 bytes (checked by the blob parser; some servers accept
//! truncated tags).
//!
//! KMIP 1.4 has no Re-encrypt: [`Kms::re_encrypt`] decrypts into this
//! process's memory (zeroized) and encrypts under the destination key.
//!
//! # Keys
//!
//! The envol key id is the object's Name. [`KmipKms::create_key`] creates
//! an AES-256 key with usage Encrypt|Decrypt and activates it;
//! [`KmipKms::revoke_key`] deactivates it (wraps and unwraps are then
//! refused as [`KmsError::Disabled`]), [`KmipKms::destroy_key`] destroys a
//! revoked key (then [`KmsError::NotFound`]). Names are looked up with
//! Locate once per process and remembered.
//!
//! # Principals
//!
//! The server authorises the TLS client certificate, not envol principals:
//! every principal that reaches a [`KmipKms`] acts with the certificate's
//! rights. [`KmipConfig::allowed_principals`] restricts which principal
//! names this service accepts (empty: any).
//!
//! # Errors
//!
//! | what happened | error |
//! |---|---|
//! | server refused the client certificate (TLS alert), Authentication Not Successful | `AccessDenied` |
//! | Permission Denied on a key that is Active (or whose state this client may not read) | `AccessDenied` |
//! | Permission Denied on a key that is Pre-Active, Deactivated or Compromised | `Disabled` |
//! | no object with that name (or not visible to this client), Item Not Found | `NotFound` |
//! | Decrypt: Cryptographic Failure (or PyKMIP's General Failure); a blob that does not parse | `InvalidCiphertext` |
//! | connection refused, reset, dropped or timed out (after retries within the budget) | `Unavailable` |
//! | the server's certificate does not verify; any other KMIP failure | `Unavailable` (not retried) |

use std::fmt;

use envol::envelope::{
    self, Algorithm, Context, DataKey, MAX_AAD, MAX_SECRET, WrappedKey, blob_len, check_key_id,
};
use envol::kms::{Kms, KmsError};
use envol::xts::KeySize;
use zeroize::Zeroizing;

mod client;
mod config;
pub mod protocol;
pub mod ttlv;

pub use client::ServiceError;
use client::{Client, Refused};
pub use config::{
    ConfigError, DEFAULT_PORT, ENV_ADDRESS, ENV_CA, ENV_CERT, ENV_KEY, ENV_SERVER_NAME, KmipConfig,
};
pub use protocol::{KeyState, Operation};

/// The blob algorithm this service writes and reads.
pub const ALGORITHM: Algorithm = Algorithm::KmipAes256Gcm;

/// The backing version every KMIP blob records (KMIP keys are rotated by
/// creating a new named key and rewrapping).
const VERSION: u32 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = protocol::GCM_TAG_LEN;

/// The envol key service over a KMIP server.
pub struct KmipKms {
    client: Client,
    /// Key ids already located: (name, unique identifier).
    uids: Vec<(String, String)>,
}

impl fmt::Debug for KmipKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmipKms")
            .field("address", &self.client.config().address)
            .field("connected", &self.client.is_connected())
            .finish_non_exhaustive()
    }
}

fn envelope_err(e: envelope::Error) -> KmsError {
    match e {
        envelope::Error::BufferTooSmall => KmsError::BufferTooSmall,
        envelope::Error::Rng => KmsError::Unavailable,
        _ => KmsError::InvalidArgument,
    }
}

fn random(buf: &mut [u8]) -> Result<(), KmsError> {
    getrandom::fill(buf).map_err(|_| KmsError::Unavailable)
}

/// Parses a blob this service can open; anything else is invalid
/// ciphertext here.
fn parse_blob(blob: &[u8]) -> Result<WrappedKey<'_>, KmsError> {
    WrappedKey::parse(blob)
        .ok()
        .filter(|w| w.algorithm() == ALGORITHM && w.backing_version() == VERSION)
        .ok_or(KmsError::InvalidCiphertext)
}

impl KmipKms {
    /// A service for the server `cfg` names. Reads the certificates and
    /// key now; connects on the first call.
    pub fn new(cfg: KmipConfig) -> Result<KmipKms, ConfigError> {
        Ok(KmipKms {
            client: Client::new(cfg)?,
            uids: Vec::new(),
        })
    }

    /// [`KmipKms::new`] with [`KmipConfig::from_env`].
    pub fn from_env() -> Result<KmipKms, ConfigError> {
        KmipKms::new(KmipConfig::from_env()?)
    }

    /// The configuration in use.
    pub fn config(&self) -> &KmipConfig {
        self.client.config()
    }

    /// What the server (or the connection) said when the last call failed.
    pub fn last_error(&self) -> Option<&ServiceError> {
        self.client.last_error()
    }

    /// Requests sent (or attempted) so far, retries included.
    pub fn attempts(&self) -> u64 {
        self.client.attempts()
    }

    /// Closes the connection; the next call opens a new one.
    pub fn disconnect(&mut self) {
        self.client.disconnect();
    }

    /// One KMIP operation: the response payload, or the error. The building
    /// block of the other methods, public for administration and tests
    /// (envol itself never sends Get).
    pub fn call(
        &mut self,
        op: Operation,
        payload: Vec<ttlv::Item>,
    ) -> Result<ttlv::Item, KmsError> {
        self.client.call(op, payload).map_err(|r| r.kind)
    }

    /// Creates master key `key_id` on the server (AES-256, usage
    /// Encrypt|Decrypt, named `key_id`) and activates it. Returns its
    /// unique identifier. `InvalidArgument` for a malformed id or a name
    /// an object visible to this client already has.
    pub fn create_key(&mut self, key_id: &str) -> Result<String, KmsError> {
        check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
        if !self.locate(key_id)?.is_empty() {
            return Err(KmsError::InvalidArgument);
        }
        let created = self.call(Operation::Create, protocol::create_aes256(key_id))?;
        let uid = protocol::text_of(&created, protocol::tag::UNIQUE_IDENTIFIER)
            .ok_or(KmsError::Unavailable)?
            .to_string();
        self.call(Operation::Activate, protocol::by_uid(&uid))?;
        self.remember(key_id, &uid);
        Ok(uid)
    }

    /// The state of master key `key_id`.
    pub fn key_state(&mut self, key_id: &str) -> Result<KeyState, KmsError> {
        let uid = self.uid(key_id)?;
        let attrs = self.call(Operation::GetAttributes, protocol::get_state(&uid))?;
        protocol::state_of(&attrs).ok_or(KmsError::Unavailable)
    }

    /// Revokes master key `key_id` (cessation of operation, or key
    /// compromise): it becomes Deactivated (Compromised) and the server
    /// refuses to use it; wraps and unwraps give `Disabled`.
    pub fn revoke_key(&mut self, key_id: &str, compromised: bool) -> Result<(), KmsError> {
        let uid = self.uid(key_id)?;
        self.call(Operation::Revoke, protocol::revoke(&uid, compromised))
            .map(|_| ())
    }

    /// Destroys revoked master key `key_id`; every blob under it becomes
    /// unopenable (`NotFound`). Servers refuse to destroy an Active key.
    pub fn destroy_key(&mut self, key_id: &str) -> Result<(), KmsError> {
        let uid = self.uid(key_id)?;
        self.call(Operation::Destroy, protocol::by_uid(&uid))?;
        self.forget(key_id);
        Ok(())
    }

    fn locate(&mut self, key_id: &str) -> Result<Vec<String>, KmsError> {
        let found = self.call(Operation::Locate, protocol::locate_by_name(key_id))?;
        Ok(protocol::located(&found)
            .into_iter()
            .map(str::to_string)
            .collect())
    }

    fn remember(&mut self, key_id: &str, uid: &str) {
        self.forget(key_id);
        self.uids.push((key_id.to_string(), uid.to_string()));
    }

    fn forget(&mut self, key_id: &str) {
        self.uids.retain(|(k, _)| k != key_id);
    }

    /// The unique identifier of the object named `key_id`: `NotFound` if
    /// none is visible to this client, `InvalidArgument` if several are.
    fn uid(&mut self, key_id: &str) -> Result<String, KmsError> {
        check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
        if let Some((_, u)) = self.uids.iter().find(|(k, _)| k == key_id) {
            return Ok(u.clone());
        }
        let found = self.locate(key_id)?;
        match found.as_slice() {
            [] => Err(KmsError::NotFound),
            [one] => {
                self.remember(key_id, one);
                Ok(one.clone())
            }
            _ => {
                log::warn!(
                    "envol KMIP: {} objects are named {key_id}; refusing to guess",
                    found.len()
                );
                Err(KmsError::InvalidArgument)
            }
        }
    }

    /// Runs `op` on the key named `key_id`. A remembered identifier the
    /// server no longer knows is looked up again once; Permission Denied
    /// is told apart by the key's state.
    fn with_key(
        &mut self,
        key_id: &str,
        op: Operation,
        payload: &dyn Fn(&str) -> Vec<ttlv::Item>,
    ) -> Result<ttlv::Item, KmsError> {
        let cached = self.uids.iter().any(|(k, _)| k == key_id);
        let uid = self.uid(key_id)?;
        match self.client.call(op, payload(&uid)) {
            Ok(p) => Ok(p),
            Err(Refused {
                kind: KmsError::NotFound,
                ..
            }) if cached => {
                self.forget(key_id);
                let uid = self.uid(key_id)?;
                self.client
                    .call(op, payload(&uid))
                    .map_err(|r| self.refine(&uid, r))
            }
            Err(r) => Err(self.refine(&uid, r)),
        }
    }

    /// Permission Denied: `Disabled` if the key is not Active, else (or if
    /// its state cannot be read) `AccessDenied`.
    fn refine(&mut self, uid: &str, r: Refused) -> KmsError {
        if r.reason != protocol::reason::PERMISSION_DENIED {
            return r.kind;
        }
        match self
            .client
            .call(Operation::GetAttributes, protocol::get_state(uid))
        {
            Ok(attrs) => match protocol::state_of(&attrs) {
                Some(KeyState::Active) | None => KmsError::AccessDenied,
                Some(_) => KmsError::Disabled,
            },
            Err(_) => KmsError::AccessDenied,
        }
    }

    fn check_principal(&self, principal: &str) -> Result<(), KmsError> {
        let allowed = &self.client.config().allowed_principals;
        if allowed.is_empty() || allowed.iter().any(|p| p == principal) {
            Ok(())
        } else {
            Err(KmsError::AccessDenied)
        }
    }

    /// Wraps `secret` under `key_id` on the server and writes the blob.
    fn wrap(
        &mut self,
        key_id: &str,
        context: &Context<'_>,
        secret: &[u8],
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
        if secret.is_empty() || secret.len() > MAX_SECRET {
            return Err(KmsError::InvalidArgument);
        }
        if blob_out.len() < blob_len(key_id.len(), secret.len()) {
            return Err(KmsError::BufferTooSmall);
        }
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        // The associated data depends on the lengths only, not on the bytes
        // of the ciphertext, so the draft can carry the secret in its place.
        let draft = WrappedKey::from_gcm_parts(ALGORITHM, key_id, VERSION, nonce, secret, [0; 16])
            .map_err(envelope_err)?;
        let mut aad = Zeroizing::new([0u8; MAX_AAD]);
        let a = draft
            .associated_data(context, &mut aad[..])
            .map_err(envelope_err)?;
        let answer = self.with_key(key_id, Operation::Encrypt, &|uid| {
            protocol::encrypt_gcm(uid, secret, &nonce, &aad[..a])
        })?;
        let ct = protocol::bytes_of(&answer, protocol::tag::DATA);
        let tag = protocol::bytes_of(&answer, protocol::tag::AEAD_TAG);
        // A server that chose its own nonce would have broken the
        // associated data; one that returns other lengths is not doing GCM.
        let nonce_kept =
            protocol::bytes_of(&answer, protocol::tag::IV_COUNTER_NONCE).is_none_or(|n| n == nonce);
        let (Some(ct), Some(tag), true) = (ct, tag, nonce_kept) else {
            log::warn!(
                "envol KMIP Encrypt: the answer lacks the ciphertext or tag, or changed the nonce"
            );
            return Err(KmsError::Unavailable);
        };
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| KmsError::Unavailable)?;
        if ct.len() != secret.len() {
            return Err(KmsError::Unavailable);
        }
        WrappedKey::from_gcm_parts(ALGORITHM, key_id, VERSION, nonce, ct, tag)
            .and_then(|w| w.encode(blob_out))
            .map_err(envelope_err)
    }

    /// Unwraps a blob of this service on the server.
    fn unwrap(
        &mut self,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let w = parse_blob(blob)?;
        let mut aad = Zeroizing::new([0u8; MAX_AAD]);
        let a = w
            .associated_data(context, &mut aad[..])
            .map_err(|_| KmsError::InvalidCiphertext)?;
        let (ct, nonce, tag) = (w.ciphertext(), w.nonce(), w.tag());
        let answer = self.with_key(w.key_id(), Operation::Decrypt, &|uid| {
            protocol::decrypt_gcm(uid, ct, &nonce, &aad[..a], &tag)
        })?;
        let plain = protocol::bytes_of(&answer, protocol::tag::DATA)
            .filter(|p| p.len() == ct.len())
            .ok_or(KmsError::InvalidCiphertext)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

impl Kms for KmipKms {
    fn generate_data_key(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        self.check_principal(principal)?;
        let mut bytes = Zeroizing::new([0u8; 64]);
        let key = &mut bytes[..size.key_len()];
        random(key)?;
        let dek = DataKey::from_bytes(key).map_err(|_| KmsError::InvalidArgument)?;
        let n = self.wrap(key_id, context, dek.as_bytes(), blob_out)?;
        Ok((dek, n))
    }

    fn generate_data_key_without_plaintext(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.generate_data_key(principal, key_id, size, context, blob_out)
            .map(|(_, n)| n)
    }

    fn decrypt_data_key(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        self.check_principal(principal)?;
        let w = parse_blob(blob)?;
        if !matches!(w.secret_len(), Some(32 | 64)) {
            return Err(KmsError::InvalidCiphertext);
        }
        let plain = self.unwrap(blob, context)?;
        DataKey::from_bytes(&plain).map_err(|_| KmsError::InvalidCiphertext)
    }

    fn re_encrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        source_context: &Context<'_>,
        dest_key_id: &str,
        dest_context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.check_principal(principal)?;
        check_key_id(dest_key_id).map_err(|_| KmsError::InvalidArgument)?;
        let w = parse_blob(blob)?;
        let len = w.secret_len().ok_or(KmsError::InvalidCiphertext)?;
        if blob_out.len() < blob_len(dest_key_id.len(), len) {
            return Err(KmsError::BufferTooSmall);
        }
        // The destination must exist before anything is unwrapped.
        self.uid(dest_key_id)?;
        let plain = self.unwrap(blob, source_context)?;
        self.wrap(dest_key_id, dest_context, &plain, blob_out)
    }

    fn encrypt(
        &mut self,
        principal: &str,
        key_id: &str,
        context: &Context<'_>,
        plaintext: &[u8],
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.check_principal(principal)?;
        self.wrap(key_id, context, plaintext, blob_out)
    }

    fn decrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.check_principal(principal)?;
        let w = parse_blob(blob)?;
        let len = w.secret_len().ok_or(KmsError::InvalidCiphertext)?;
        let out = out.get_mut(..len).ok_or(KmsError::BufferTooSmall)?;
        let plain = self.unwrap(blob, context)?;
        out.copy_from_slice(&plain);
        Ok(len)
    }
}
