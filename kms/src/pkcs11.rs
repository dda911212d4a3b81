//! Master keys inside a PKCS#11 token (an HSM, SoftHSM2).
//!
//! A master key is one or more AES-256 secret-key objects in the token, one
//! per backing version, created by the token itself (`C_GenerateKey`) with
//!
//! | attribute | value |
//! |---|---|
//! | `CKA_TOKEN`, `CKA_PRIVATE` | true (persistent, visible only to the logged-in user) |
//! | `CKA_SENSITIVE` | true (`CKA_VALUE` is never returned) |
//! | `CKA_EXTRACTABLE` | false (no `C_WrapKey` can export it) |
//! | `CKA_ENCRYPT`, `CKA_DECRYPT` | true |
//! | `CKA_WRAP`, `CKA_UNWRAP`, `CKA_SIGN`, `CKA_VERIFY`, `CKA_DERIVE` | false |
//! | `CKA_MODIFIABLE`, `CKA_COPYABLE` | false |
//! | `CKA_LABEL` | the envol key id |
//! | `CKA_ID` | the backing version, `u32` little-endian |
//!
//! Only objects of class `CKO_SECRET_KEY`, type `CKK_AES`, 32 bytes long,
//! sensitive and non-extractable count as envol master keys; anything else
//! carrying the same label is ignored for wrapping and unwrapping.
//!
//! Data keys (and small secrets) are wrapped by the token with `CKM_AES_GCM`:
//! a fresh random 96-bit nonce, a 128-bit tag, and as associated data the
//! blob's own header followed by the canonical encryption context — exactly
//! the layout of envol's software blobs, under algorithm
//! [`Algorithm::Pkcs11Aes256Gcm`]. The blob records the backing version, so
//! blobs made before a [`Pkcs11Kms::rotate_key`] keep opening with their own
//! version while new ones use the newest.
//!
//! # Principals
//!
//! A PKCS#11 token authorises its logged-in *user* (whoever knows the user
//! PIN), not envol principals: every principal that reaches a
//! [`Pkcs11Kms`] acts with the token user's rights. For cheap least
//! privilege, [`Pkcs11Config::allowed_principals`] restricts which principal
//! names the service accepts (empty: any); others get
//! [`KmsError::AccessDenied`]. Real per-principal policy belongs in front of
//! this service or in the HSM's own partitioning.
//!
//! # Process-global state
//!
//! A PKCS#11 module is initialised once per process (`C_Initialize`) and
//! its login state is per process and token: once one session of this
//! process is logged in to a token, all of its sessions are. [`load_module`]
//! keeps one initialised context per module path for the life of the
//! process, and [`Pkcs11Kms::open`] uses it; a second service on the same
//! token shares the first one's login (the PIN is only checked by the token
//! on the first login). Modules are never finalised.
//!
//! # Nonces
//!
//! Nonces are random, so one backing version should wrap no more than 2^32
//! secrets (NIST SP 800-38D); rotate long before that. Tokens that insist on
//! generating GCM IVs themselves are refused (the nonce is part of the
//! associated data and must be chosen before the call).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::Ulong;
use envol::envelope::{
    self, Algorithm, Context, DataKey, MAX_AAD, MAX_SECRET, WrappedKey, blob_len, check_key_id,
};
use envol::kms::{Kms, KmsError};
use envol::xts::KeySize;
use zeroize::Zeroizing;

pub use cryptoki::context::Pkcs11;
pub use cryptoki::types::AuthPin;

/// The module used when neither the configuration nor
/// [`MODULE_ENV`] names one: SoftHSM2 as Debian and Ubuntu install it.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Environment variable naming the PKCS#11 module to load.
pub const MODULE_ENV: &str = "ENVOL_PKCS11_MODULE";

/// The blob algorithm this service writes and reads.
pub const ALGORITHM: Algorithm = Algorithm::Pkcs11Aes256Gcm;

/// AES-GCM tag length in bytes.
const TAG_LEN: usize = 16;
/// AES-256 key length in bytes.
const MASTER_KEY_LEN: u64 = 32;
/// Longest PKCS#11 token label, in bytes.
const MAX_TOKEN_LABEL: usize = 32;

/// How to reach the token.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library) to load.
    pub module: PathBuf,
    /// The label of the token holding the master keys (1..=32 bytes).
    pub token_label: String,
    /// The token's user PIN. Zeroized on drop, never printed.
    pub user_pin: AuthPin,
    /// envol principals this service serves; empty means any. The token
    /// itself only knows its logged-in user (see the module docs).
    pub allowed_principals: Vec<String>,
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("user_pin", &"<redacted>")
            .field("allowed_principals", &self.allowed_principals)
            .finish()
    }
}

impl Pkcs11Config {
    /// A configuration for the token labelled `token_label`, logging in
    /// with `user_pin`, using [`Pkcs11Config::default_module`] and serving
    /// any principal.
    pub fn new(token_label: impl Into<String>, user_pin: AuthPin) -> Pkcs11Config {
        Pkcs11Config {
            module: Pkcs11Config::default_module(),
            token_label: token_label.into(),
            user_pin,
            allowed_principals: Vec::new(),
        }
    }

    /// The module named by [`MODULE_ENV`] if set and not empty, else
    /// [`DEFAULT_MODULE`].
    pub fn default_module() -> PathBuf {
        match std::env::var_os(MODULE_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_MODULE),
        }
    }

    /// Uses the module at `path`.
    #[must_use]
    pub fn with_module(mut self, path: impl Into<PathBuf>) -> Pkcs11Config {
        self.module = path.into();
        self
    }

    /// Adds `principal` to the allow-list (which, once not empty, refuses
    /// every principal not on it).
    #[must_use]
    pub fn allow_principal(mut self, principal: impl Into<String>) -> Pkcs11Config {
        self.allowed_principals.push(principal.into());
        self
    }
}

/// One initialised context per module path, for the life of the process.
static MODULES: OnceLock<Mutex<Vec<(PathBuf, Pkcs11)>>> = OnceLock::new();

/// Loads and initialises the PKCS#11 module at `path`, once per process:
/// later calls with the same path return the same context. A module that
/// something else in the process already initialised is accepted as is.
/// Errors: [`KmsError::Unavailable`] if it cannot be loaded or initialised.
///
/// Tests and tools that need raw `cryptoki` access to the token a
/// [`Pkcs11Kms`] uses should take their context from here, since
/// `C_Initialize` may only be called once per process.
pub fn load_module(path: &Path) -> Result<Pkcs11, KmsError> {
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let modules = MODULES.get_or_init(|| Mutex::new(Vec::new()));
    let mut modules = modules.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, m)) = modules.iter().find(|(p, _)| *p == key) {
        return Ok(m.clone());
    }
    let m = Pkcs11::new(&key).map_err(|e| {
        log::warn!("pkcs11: cannot load module {}: {e}", key.display());
        KmsError::Unavailable
    })?;
    match m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            log::warn!("pkcs11: cannot initialise module {}: {e}", key.display());
            return Err(KmsError::Unavailable);
        }
    }
    modules.push((key, m.clone()));
    Ok(m)
}

/// Maps a token error to the service's error; never carries token data.
fn map_err(e: &CkError) -> KmsError {
    let CkError::Pkcs11(rv, function) = e else {
        log::debug!("pkcs11: {e}");
        return KmsError::Unavailable;
    };
    let mapped = match rv {
        RvError::PinIncorrect
        | RvError::PinInvalid
        | RvError::PinLenRange
        | RvError::PinExpired
        | RvError::PinLocked
        | RvError::UserPinNotInitialized
        | RvError::UserNotLoggedIn
        | RvError::KeyFunctionNotPermitted => KmsError::AccessDenied,
        RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange => {
            KmsError::InvalidCiphertext
        }
        // SoftHSM2 (2.6) reports a GCM tag mismatch from C_Decrypt as
        // CKR_GENERAL_ERROR; once C_DecryptInit has accepted key and
        // parameters, a failing C_Decrypt means the input did not
        // authenticate.
        RvError::GeneralError | RvError::FunctionFailed
            if matches!(function, Function::Decrypt) =>
        {
            KmsError::InvalidCiphertext
        }
        _ => KmsError::Unavailable,
    };
    log::debug!("pkcs11: {function}: {rv:?} -> {mapped:?}");
    mapped
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

/// The attributes every envol master key object matches.
fn master_key_template(key_id: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Label(key_id.as_bytes().to_vec()),
        Attribute::ValueLen(Ulong::new(MASTER_KEY_LEN)),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ]
}

/// The envol key service over a PKCS#11 token.
///
/// Holds one read/write session logged in as the token user. If a call
/// fails with [`KmsError::Unavailable`] or [`KmsError::AccessDenied`] from
/// the token, the session is dropped and the next call opens (and logs in)
/// a new one, so such calls may simply be retried.
pub struct Pkcs11Kms {
    pkcs11: Pkcs11,
    config: Pkcs11Config,
    slot: Slot,
    session: Option<Session>,
}

impl fmt::Debug for Pkcs11Kms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Kms")
            .field("config", &self.config)
            .field("slot", &self.slot.id())
            .field("connected", &self.session.is_some())
            .finish()
    }
}

impl Pkcs11Kms {
    /// Loads (once per process, [`load_module`]) the configured module,
    /// finds the token by label, opens a read/write session and logs in as
    /// the user.
    ///
    /// Errors: `NotFound` if no initialised token has that label,
    /// `InvalidArgument` for a label longer than 32 bytes or one that
    /// several tokens carry, `AccessDenied` for a wrong PIN, `Unavailable`
    /// if the module cannot be loaded or the token fails.
    pub fn open(config: Pkcs11Config) -> Result<Pkcs11Kms, KmsError> {
        let pkcs11 = load_module(&config.module)?;
        Pkcs11Kms::with_module(pkcs11, config)
    }

    /// As [`Pkcs11Kms::open`], over a context the caller loaded and
    /// initialised (`config.module` is then only informational).
    pub fn with_module(pkcs11: Pkcs11, config: Pkcs11Config) -> Result<Pkcs11Kms, KmsError> {
        if config.token_label.is_empty() || config.token_label.len() > MAX_TOKEN_LABEL {
            return Err(KmsError::InvalidArgument);
        }
        let slot = find_token(&pkcs11, &config.token_label)?;
        let mut kms = Pkcs11Kms {
            pkcs11,
            config,
            slot,
            session: None,
        };
        kms.session()?;
        Ok(kms)
    }

    /// The label of the token in use.
    pub fn token_label(&self) -> &str {
        &self.config.token_label
    }

    /// Drops the session and opens a new one, logged in.
    pub fn reconnect(&mut self) -> Result<(), KmsError> {
        self.session = None;
        self.session().map(|_| ())
    }

    /// Creates master key `key_id` with backing version 1, generated inside
    /// the token (`CKM_AES_KEY_GEN`, 32 bytes; attributes in the module
    /// docs). Refuses (`InvalidArgument`) a malformed key id or a label
    /// that any secret key in the token already carries.
    ///
    /// Management calls are authorised by the token login alone; the
    /// principal allow-list only guards [`Kms`] calls.
    pub fn create_key(&mut self, key_id: &str) -> Result<(), KmsError> {
        check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
        self.run(|s| {
            let any = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::Label(key_id.as_bytes().to_vec()),
                ])
                .map_err(|e| map_err(&e))?;
            if !any.is_empty() {
                return Err(KmsError::InvalidArgument);
            }
            generate_master(s, key_id, 1)
        })
    }

    /// Adds backing version n+1 of `key_id`, generated inside the token;
    /// new wraps use it, blobs under older versions keep opening. Returns
    /// the new version. `NotFound` if the key does not exist.
    ///
    /// Two processes rotating the same key at once may both create the same
    /// version number; unwrapping tries every object of a version, so blobs
    /// stay readable either way.
    pub fn rotate_key(&mut self, key_id: &str) -> Result<u32, KmsError> {
        check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
        self.run(|s| {
            let (newest, _) = newest_version(s, key_id)?;
            let next = newest.checked_add(1).ok_or(KmsError::InvalidArgument)?;
            generate_master(s, key_id, next)?;
            Ok(next)
        })
    }

    /// The newest backing version of `key_id` (the one new wraps use).
    pub fn newest_version(&mut self, key_id: &str) -> Result<u32, KmsError> {
        check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
        self.run(|s| newest_version(s, key_id).map(|(v, _)| v))
    }

    /// The logged-in session, opening one if there is none.
    fn session(&mut self) -> Result<&Session, KmsError> {
        if self.session.is_none() {
            let s = self
                .pkcs11
                .open_rw_session(self.slot)
                .map_err(|e| map_err(&e))?;
            match s.login(UserType::User, Some(&self.config.user_pin)) {
                // Login state is per process and token: another session of
                // this process already logged in.
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(e) => return Err(map_err(&e)),
            }
            self.session = Some(s);
        }
        self.session.as_ref().ok_or(KmsError::Unavailable)
    }

    /// Runs `f` on the session; a token failure or lost login drops the
    /// session so that the next call starts afresh.
    fn run<T>(&mut self, f: impl FnOnce(&Session) -> Result<T, KmsError>) -> Result<T, KmsError> {
        let r = f(self.session()?);
        if matches!(r, Err(KmsError::Unavailable | KmsError::AccessDenied)) {
            self.session = None;
        }
        r
    }

    fn check_principal(&self, principal: &str) -> Result<(), KmsError> {
        let allowed = &self.config.allowed_principals;
        if allowed.is_empty() || allowed.iter().any(|p| p == principal) {
            Ok(())
        } else {
            Err(KmsError::AccessDenied)
        }
    }

    /// Wraps `secret` under the newest version of `key_id`.
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
        self.run(|s| {
            let (version, key) = newest_version(s, key_id)?;
            seal(s, key, key_id, version, context, secret, blob_out)
        })
    }

    /// Unwraps a blob of this service into a zeroizing buffer.
    fn unwrap(
        &mut self,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let w = parse_blob(blob)?;
        self.run(|s| open(s, &w, context))
    }
}

/// Finds the slot of the initialised token labelled `label`.
fn find_token(pkcs11: &Pkcs11, label: &str) -> Result<Slot, KmsError> {
    let slots = pkcs11
        .get_slots_with_initialized_token()
        .map_err(|e| map_err(&e))?;
    let mut found = None;
    for slot in slots {
        let info = pkcs11.get_token_info(slot).map_err(|e| map_err(&e))?;
        if info.label() == label {
            if found.is_some() {
                return Err(KmsError::InvalidArgument);
            }
            found = Some(slot);
        }
    }
    found.ok_or(KmsError::NotFound)
}

/// Generates backing version `version` of `key_id` inside the token.
fn generate_master(s: &Session, key_id: &str, version: u32) -> Result<(), KmsError> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(Ulong::new(MASTER_KEY_LEN)),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Modifiable(false),
        Attribute::Copyable(false),
        Attribute::Label(key_id.as_bytes().to_vec()),
        Attribute::Id(version.to_le_bytes().to_vec()),
    ];
    s.generate_key(&Mechanism::AesKeyGen, &template)
        .map(|_| ())
        .map_err(|e| map_err(&e))
}

/// The backing version recorded in a key object's `CKA_ID`.
fn version_of(s: &Session, key: ObjectHandle) -> Result<Option<u32>, KmsError> {
    let attrs = s
        .get_attributes(key, &[AttributeType::Id])
        .map_err(|e| map_err(&e))?;
    Ok(attrs.iter().find_map(|a| match a {
        Attribute::Id(id) => <[u8; 4]>::try_from(id.as_slice())
            .ok()
            .map(u32::from_le_bytes),
        _ => None,
    }))
}

/// The newest version of `key_id` and its key object; `NotFound` if the
/// token holds no master key with that label.
fn newest_version(s: &Session, key_id: &str) -> Result<(u32, ObjectHandle), KmsError> {
    let keys = s
        .find_objects(&master_key_template(key_id))
        .map_err(|e| map_err(&e))?;
    let mut newest = None;
    for key in keys {
        if let Some(v) = version_of(s, key)?
            && v > 0
            && newest.is_none_or(|(n, _)| v > n)
        {
            newest = Some((v, key));
        }
    }
    newest.ok_or(KmsError::NotFound)
}

/// Every key object of `key_id` at `version`: `NotFound` if the label is
/// unknown, `InvalidCiphertext` if the version is.
fn version_keys(s: &Session, key_id: &str, version: u32) -> Result<Vec<ObjectHandle>, KmsError> {
    let mut template = master_key_template(key_id);
    template.push(Attribute::Id(version.to_le_bytes().to_vec()));
    let keys = s.find_objects(&template).map_err(|e| map_err(&e))?;
    if !keys.is_empty() {
        return Ok(keys);
    }
    newest_version(s, key_id)?;
    Err(KmsError::InvalidCiphertext)
}

/// Parses a blob this service can open; anything else is invalid
/// ciphertext here.
fn parse_blob(blob: &[u8]) -> Result<WrappedKey<'_>, KmsError> {
    WrappedKey::parse(blob)
        .ok()
        .filter(|w| w.algorithm() == ALGORITHM)
        .ok_or(KmsError::InvalidCiphertext)
}

/// Encrypts `secret` in the token under `key` and writes the blob.
fn seal(
    s: &Session,
    key: ObjectHandle,
    key_id: &str,
    version: u32,
    context: &Context<'_>,
    secret: &[u8],
    blob_out: &mut [u8],
) -> Result<usize, KmsError> {
    let mut nonce = [0u8; 12];
    random(&mut nonce)?;
    // The associated data depends on the lengths only, not on the bytes of
    // the ciphertext, so the draft can carry the secret in its place.
    let draft = WrappedKey::from_gcm_parts(ALGORITHM, key_id, version, nonce, secret, [0; 16])
        .map_err(envelope_err)?;
    let mut aad = [0u8; MAX_AAD];
    let a = draft
        .associated_data(context, &mut aad)
        .map_err(envelope_err)?;
    let mut iv = nonce;
    let out = {
        let params = GcmParams::new(&mut iv, &aad[..a], Ulong::new(128))
            .map_err(|_| KmsError::InvalidArgument)?;
        s.encrypt(&Mechanism::AesGcm(params), key, secret)
            .map_err(|e| map_err(&e))?
    };
    // A token that picked its own IV would have broken the associated data.
    if iv != nonce || out.len() != secret.len() + TAG_LEN {
        log::warn!("pkcs11: token changed the GCM IV or returned an unexpected length");
        return Err(KmsError::Unavailable);
    }
    let (ct, tag) = out.split_at(secret.len());
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| KmsError::Unavailable)?;
    WrappedKey::from_gcm_parts(ALGORITHM, key_id, version, nonce, ct, tag)
        .and_then(|w| w.encode(blob_out))
        .map_err(envelope_err)
}

/// Decrypts a blob in the token with its key id and version.
fn open(
    s: &Session,
    w: &WrappedKey<'_>,
    context: &Context<'_>,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let keys = version_keys(s, w.key_id(), w.backing_version())?;
    let mut aad = [0u8; MAX_AAD];
    let a = w
        .associated_data(context, &mut aad)
        .map_err(|_| KmsError::InvalidCiphertext)?;
    let mut input = Vec::with_capacity(w.ciphertext().len() + TAG_LEN);
    input.extend_from_slice(w.ciphertext());
    input.extend_from_slice(&w.tag());
    let mut result = Err(KmsError::InvalidCiphertext);
    // Normally one object per version; after a rotation race, try each.
    for key in keys {
        let mut iv = w.nonce();
        let params = GcmParams::new(&mut iv, &aad[..a], Ulong::new(128))
            .map_err(|_| KmsError::InvalidArgument)?;
        match s.decrypt(&Mechanism::AesGcm(params), key, &input) {
            Ok(plain) => {
                let plain = Zeroizing::new(plain);
                if plain.len() != w.ciphertext().len() {
                    return Err(KmsError::InvalidCiphertext);
                }
                return Ok(plain);
            }
            Err(e) => {
                result = Err(map_err(&e));
                if result != Err(KmsError::InvalidCiphertext) {
                    break;
                }
            }
        }
    }
    result
}

impl Kms for Pkcs11Kms {
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
        self.run(|s| newest_version(s, dest_key_id).map(|_| ()))?;
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
