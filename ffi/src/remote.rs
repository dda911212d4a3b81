//! Key services beyond the reference one, for C (hosted builds with the
//! `remote` feature): AWS KMS (or a compatible endpoint), a PKCS#11 HSM and
//! a KMIP key server, each as an opaque `envol_remote_kms` handle that hands out the same
//! `envol_kms_callbacks` table as the reference service, so volumes and
//! `envol_xts_init_from_blob` run on it unchanged. An optional bounded
//! cache of unwrapped data keys can be put in front of either.

use core::ffi::{c_char, c_void};
use core::mem::align_of;
use std::boxed::Box;
use std::string::String;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use envol::envelope::{Context, DataKey};
use envol::kms::{Kms, KmsError};
use envol::xts::KeySize;
use envol_kms::aws::{AwsConfig, AwsKms};
use envol_kms::cache::{CacheLimits, CachingKms};
use envol_kms::kmip::{self, KmipConfig, KmipKms};
use envol_kms::pkcs11::{AuthPin, Pkcs11Config, Pkcs11Kms};
use zeroize::Zeroizing;

use crate::boundary::{StrError, envol_status, guard, in_str, try_status};
use crate::kms::envol_kms_callbacks;
use crate::service::{ServiceHandle, callback_table};

/// Longest string argument of this part of the ABI (URLs, paths, secrets).
const MAX_ARG: usize = 4096;

/// Settings for `envol_aws_kms_new`. Every field may be NULL (or 0): it is
/// then taken from the environment and the shared AWS files exactly as the
/// AWS tools do (`AWS_ENDPOINT_URL_KMS`/`AWS_ENDPOINT_URL`, `AWS_REGION`/
/// `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_PROFILE`, `~/.aws/credentials`,
/// `~/.aws/config`); without an endpoint, `https://kms.<region>.amazonaws.com`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envol_aws_config {
    /// Endpoint URL, e.g. `https://kms.eu-west-1.amazonaws.com`, or
    /// `http://127.0.0.1:5000` for a compatible service on loopback.
    pub endpoint: *const c_char,
    /// Region signed into requests.
    pub region: *const c_char,
    /// Access key id.
    pub access_key_id: *const c_char,
    /// Secret access key (copied into zeroizing memory).
    pub secret_access_key: *const c_char,
    /// Session token of temporary credentials.
    pub session_token: *const c_char,
    /// Timeout of one attempt in milliseconds (0: 5000).
    pub timeout_ms: u32,
    /// Attempts per call, retries of throttling and transient errors
    /// included (0: 4).
    pub max_attempts: u32,
}

/// Settings for `envol_kmip_kms_new`. Every string may be NULL: it is then
/// taken from the environment (`ENVOL_KMIP_ADDRESS`, `ENVOL_KMIP_CA`,
/// `ENVOL_KMIP_CERT`, `ENVOL_KMIP_KEY`, `ENVOL_KMIP_SERVER_NAME`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envol_kmip_config {
    /// The server, `host:port` or `host` (port 5696).
    pub address: *const c_char,
    /// The name the server's certificate must carry (NULL: the host).
    pub server_name: *const c_char,
    /// PEM file of the CA certificate(s) that signed the server's.
    pub ca_path: *const c_char,
    /// PEM file of this client's certificate (its identity on the server).
    pub cert_path: *const c_char,
    /// PEM file of this client's private key.
    pub key_path: *const c_char,
    /// Timeout of one attempt in milliseconds (0: 5000).
    pub timeout_ms: u32,
    /// Attempts per call, reconnections included (0: 4).
    pub max_attempts: u32,
}

/// The services a handle can hold.
enum Service {
    Aws(Box<AwsKms>),
    Pkcs11(Box<Pkcs11Kms>),
    Kmip(Box<KmipKms>),
}

impl Service {
    fn kms(&mut self) -> &mut dyn Kms {
        match self {
            Service::Aws(k) => &mut **k,
            Service::Pkcs11(k) => &mut **k,
            Service::Kmip(k) => &mut **k,
        }
    }
}

/// A key service held by an `envol_remote_kms`: the service itself, or the
/// service behind a data-key cache.
enum Held {
    Plain(Service),
    Cached(CachingKms<Service>),
}

/// AWS KMS, a PKCS#11 token or a KMIP server as an opaque handle (hosted
/// builds with the `remote` feature). Create with `envol_aws_kms_new`,
/// `envol_pkcs11_kms_new` or `envol_kmip_kms_new`, optionally add a cache with
/// `envol_remote_kms_enable_cache`, get its callback table with
/// `envol_remote_kms_callbacks`, free with `envol_remote_kms_free`. Safe
/// to share between threads: calls on one handle take turns (each holds
/// the handle's lock for its duration, network round trip included).
pub struct envol_remote_kms {
    held: Mutex<Option<Held>>,
}

/// The key service a handle holds.
fn kms_of(held: &mut Option<Held>) -> Result<&mut dyn Kms, envol_status> {
    match held.as_mut() {
        Some(Held::Plain(k)) => Ok(k),
        Some(Held::Cached(k)) => Ok(k),
        None => Err(envol_status::ENVOL_ERR_INTERNAL),
    }
}

macro_rules! forward {
    ($self:ident . $m:ident ( $($a:ident),* )) => {
        $self.kms().$m($($a),*)
    };
}

impl Kms for Service {
    fn generate_data_key(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        forward!(self.generate_data_key(principal, key_id, size, context, blob_out))
    }
    fn generate_data_key_without_plaintext(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        forward!(
            self.generate_data_key_without_plaintext(principal, key_id, size, context, blob_out)
        )
    }
    fn decrypt_data_key(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        forward!(self.decrypt_data_key(principal, blob, context))
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
        forward!(self.re_encrypt(
            principal,
            blob,
            source_context,
            dest_key_id,
            dest_context,
            blob_out
        ))
    }
    fn encrypt(
        &mut self,
        principal: &str,
        key_id: &str,
        context: &Context<'_>,
        plaintext: &[u8],
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        forward!(self.encrypt(principal, key_id, context, plaintext, blob_out))
    }
    fn decrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        forward!(self.decrypt(principal, blob, context, out))
    }
}

/// An optional string argument: NULL is `None`.
///
/// # Safety
/// `ptr` NULL or NUL-terminated.
unsafe fn opt_str<'a>(ptr: *const c_char) -> Result<Option<&'a str>, envol_status> {
    // SAFETY: forwarded contract.
    match unsafe { in_str(ptr, MAX_ARG) } {
        Ok(s) => Ok(Some(s)),
        Err(StrError::Null) => Ok(None),
        Err(_) => Err(envol_status::ENVOL_ERR_INVALID_ARGUMENT),
    }
}

/// Stores a new handle in `*out`.
///
/// # Safety
/// `out` non-NULL and writable.
unsafe fn publish(out: *mut *mut envol_remote_kms, service: Service) {
    let h = Box::into_raw(Box::new(envol_remote_kms {
        held: Mutex::new(Some(Held::Plain(service))),
    }));
    // SAFETY: per the contract.
    unsafe { out.write(h) };
}

/// What the handle behind a pointer holds, locked for the caller.
///
/// # Safety
/// `kms` NULL or a live handle.
unsafe fn handle<'a>(
    kms: *mut envol_remote_kms,
) -> Result<MutexGuard<'a, Option<Held>>, envol_status> {
    if kms.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    if !(kms as usize).is_multiple_of(align_of::<envol_remote_kms>()) {
        return Err(envol_status::ENVOL_ERR_ALIGNMENT);
    }
    // SAFETY: a live handle per the contract. A panic inside a call (caught
    // at the boundary) leaves the service as it was between requests.
    Ok(unsafe { &(*kms).held }
        .lock()
        .unwrap_or_else(PoisonError::into_inner))
}

/// Connects to AWS KMS (or a compatible endpoint) with `cfg` (NULL: all
/// from the environment) and stores the handle in `*out`. Nothing is sent
/// until the first call. Missing region or credentials, an endpoint that
/// is not an http(s) URL, or an `http://` endpoint that is not this
/// machine's loopback (the signed requests and the plaintext data keys would
/// cross the network in clear; `ENVOL_AWS_INSECURE_CLEARTEXT_HTTP=1` in the
/// environment allows it, with a warning) is `ENVOL_ERR_INVALID_ARGUMENT`.
///
/// Every call has the configured timeout; throttling, 5xx answers and
/// transport errors are retried with jittered exponential backoff within the
/// attempt count and 10 s in all, then reported as
/// `ENVOL_ERR_KMS_UNAVAILABLE`. AWS errors map onto statuses:
/// AccessDenied (and bad or expired credentials) → `ENVOL_ERR_ACCESS_DENIED`,
/// NotFound → `ENVOL_ERR_KEY_NOT_FOUND`, Disabled →
/// `ENVOL_ERR_KEY_DISABLED`, KMSInvalidState →
/// `ENVOL_ERR_KEY_PENDING_DELETION`, InvalidCiphertext/IncorrectKey →
/// `ENVOL_ERR_INVALID_CIPHERTEXT`. AWS authorises the credentials' IAM
/// identity; the `principal` argument of the callbacks is not sent.
///
/// # Safety
/// `cfg` NULL or readable, its strings NULL or NUL-terminated; `out` NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_aws_kms_new(
    cfg: *const envol_aws_config,
    out: *mut *mut envol_remote_kms,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        if out.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        let c = if cfg.is_null() {
            envol_aws_config {
                endpoint: core::ptr::null(),
                region: core::ptr::null(),
                access_key_id: core::ptr::null(),
                secret_access_key: core::ptr::null(),
                session_token: core::ptr::null(),
                timeout_ms: 0,
                max_attempts: 0,
            }
        } else {
            // SAFETY: readable per the contract.
            unsafe { cfg.read_unaligned() }
        };
        // SAFETY: the strings' contract, field by field.
        let fields = try_status!(unsafe {
            (|| -> Result<_, envol_status> {
                Ok([
                    ("AWS_ENDPOINT_URL_KMS", opt_str(c.endpoint)?),
                    ("AWS_REGION", opt_str(c.region)?),
                    ("AWS_ACCESS_KEY_ID", opt_str(c.access_key_id)?),
                    ("AWS_SECRET_ACCESS_KEY", opt_str(c.secret_access_key)?),
                    ("AWS_SESSION_TOKEN", opt_str(c.session_token)?),
                ])
            })()
        });
        let lookup = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.map(String::from))
        };
        let mut config = try_status!(
            AwsConfig::from_env_with(&lookup).map_err(|_| envol_status::ENVOL_ERR_INVALID_ARGUMENT)
        );
        if c.timeout_ms != 0 {
            config.timeout = Duration::from_millis(u64::from(c.timeout_ms));
        }
        if c.max_attempts != 0 {
            config.retry.max_attempts = c.max_attempts;
        }
        let kms =
            try_status!(AwsKms::new(config).map_err(|_| envol_status::ENVOL_ERR_INVALID_ARGUMENT));
        // SAFETY: non-NULL and writable per the contract.
        unsafe { publish(out, Service::Aws(Box::new(kms))) };
        envol_status::ENVOL_OK
    })
}

/// Connects to the KMIP server `cfg` names (NULL: all from the
/// environment) over TLS with this client's certificate, and stores the
/// handle in `*out`. The certificate files are read now; nothing is sent
/// until the first call. A missing setting, an address that is not
/// `host[:port]` or a file that holds no usable PEM certificate or key is
/// `ENVOL_ERR_INVALID_ARGUMENT`.
///
/// Master keys are AES-256 objects on the server, named by the key id;
/// data keys are drawn on this host and wrapped by the server's AES-GCM,
/// the blob header and encryption context as additional authenticated
/// data. Dropped, refused or timed-out connections are retried on a new
/// connection with jittered exponential backoff within the attempt count
/// and 10 s in all, then reported as `ENVOL_ERR_KMS_UNAVAILABLE`. A client
/// certificate the server refuses is `ENVOL_ERR_ACCESS_DENIED`, a revoked
/// key `ENVOL_ERR_KEY_DISABLED`, an unknown or destroyed one
/// `ENVOL_ERR_KEY_NOT_FOUND`, a blob that does not verify
/// `ENVOL_ERR_INVALID_CIPHERTEXT`. The server authorises the certificate's
/// identity; the `principal` argument of the callbacks is not sent.
///
/// # Safety
/// `cfg` NULL or readable, its strings NULL or NUL-terminated; `out` NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_kmip_kms_new(
    cfg: *const envol_kmip_config,
    out: *mut *mut envol_remote_kms,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        if out.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        let c = if cfg.is_null() {
            envol_kmip_config {
                address: core::ptr::null(),
                server_name: core::ptr::null(),
                ca_path: core::ptr::null(),
                cert_path: core::ptr::null(),
                key_path: core::ptr::null(),
                timeout_ms: 0,
                max_attempts: 0,
            }
        } else {
            // SAFETY: readable per the contract.
            unsafe { cfg.read_unaligned() }
        };
        // SAFETY: the strings' contract, field by field.
        let fields = try_status!(unsafe {
            (|| -> Result<_, envol_status> {
                Ok([
                    (kmip::ENV_ADDRESS, opt_str(c.address)?),
                    (kmip::ENV_SERVER_NAME, opt_str(c.server_name)?),
                    (kmip::ENV_CA, opt_str(c.ca_path)?),
                    (kmip::ENV_CERT, opt_str(c.cert_path)?),
                    (kmip::ENV_KEY, opt_str(c.key_path)?),
                ])
            })()
        });
        let lookup = |name: &str| match fields.iter().find(|(k, _)| *k == name) {
            Some((_, Some(v))) => Some(String::from(*v)),
            _ => std::env::var(name).ok(),
        };
        let mut config = try_status!(
            KmipConfig::from_env_with(&lookup)
                .map_err(|_| envol_status::ENVOL_ERR_INVALID_ARGUMENT)
        );
        if c.timeout_ms != 0 {
            config.timeout = Duration::from_millis(u64::from(c.timeout_ms));
        }
        if c.max_attempts != 0 {
            config.retry.max_attempts = c.max_attempts;
        }
        let kms =
            try_status!(KmipKms::new(config).map_err(|_| envol_status::ENVOL_ERR_INVALID_ARGUMENT));
        // SAFETY: non-NULL and writable per the contract.
        unsafe { publish(out, Service::Kmip(Box::new(kms))) };
        envol_status::ENVOL_OK
    })
}

/// Opens the PKCS#11 token labelled `token_label` through the module at
/// `module_path` (NULL: `$ENVOL_PKCS11_MODULE`, else SoftHSM2's
/// `/usr/lib/softhsm/libsofthsm2.so`), logs in as the user with `user_pin`,
/// and stores the handle in `*out`. Master keys are AES-256 objects inside
/// the token (sensitive, never extractable), named by their label; data
/// keys are wrapped with AES-GCM inside the token, the encryption context
/// as associated data. A wrong PIN is `ENVOL_ERR_ACCESS_DENIED`, an unknown
/// token `ENVOL_ERR_KEY_NOT_FOUND`, a module that does not load
/// `ENVOL_ERR_KMS_UNAVAILABLE`.
///
/// # Safety
/// Strings NULL or NUL-terminated; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_pkcs11_kms_new(
    module_path: *const c_char,
    token_label: *const c_char,
    user_pin: *const c_char,
    out: *mut *mut envol_remote_kms,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        if out.is_null() || token_label.is_null() || user_pin.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: the strings' contract.
        let module = try_status!(unsafe { opt_str(module_path) });
        // SAFETY: as above.
        let label = try_status!(unsafe { opt_str(token_label) }).unwrap_or("");
        // SAFETY: as above.
        let pin = Zeroizing::new(String::from(
            try_status!(unsafe { opt_str(user_pin) }).unwrap_or(""),
        ));
        let mut config = Pkcs11Config::new(label, AuthPin::from(pin.as_str()));
        if let Some(m) = module {
            config = config.with_module(m);
        }
        let kms = try_status!(Pkcs11Kms::open(config).map_err(envol_status::from));
        // SAFETY: non-NULL and writable per the contract.
        unsafe { publish(out, Service::Pkcs11(Box::new(kms))) };
        envol_status::ENVOL_OK
    })
}

/// Creates master key `key_id` inside the handle's PKCS#11 token (AES-256,
/// sensitive, non-extractable). An existing key is
/// `ENVOL_ERR_INVALID_ARGUMENT`; a handle that is not a PKCS#11 one too.
///
/// # Safety
/// `kms` NULL or a live handle; `key_id` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_pkcs11_kms_create_key(
    kms: *mut envol_remote_kms,
    key_id: *const c_char,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: forwarded contract.
        unsafe {
            create_key(kms, key_id, |s, id| match s {
                Service::Pkcs11(k) => Some(k.create_key(id)),
                _ => None,
            })
        }
    })
}

/// Creates master key `key_id` on the handle's KMIP server (an AES-256
/// object named `key_id`, usage Encrypt and Decrypt, activated). A name
/// an object visible to this client already has is
/// `ENVOL_ERR_INVALID_ARGUMENT`; a handle that is not a KMIP one too.
///
/// # Safety
/// `kms` NULL or a live handle; `key_id` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_kmip_kms_create_key(
    kms: *mut envol_remote_kms,
    key_id: *const c_char,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: forwarded contract.
        unsafe {
            create_key(kms, key_id, |s, id| match s {
                Service::Kmip(k) => Some(k.create_key(id).map(|_| ())),
                _ => None,
            })
        }
    })
}

/// Creates a master key with the handle's service, if `create` serves
/// that kind of service (`None`: it does not).
///
/// # Safety
/// `kms` NULL or a live handle; `key_id` NULL or NUL-terminated.
unsafe fn create_key(
    kms: *mut envol_remote_kms,
    key_id: *const c_char,
    create: impl FnOnce(&mut Service, &str) -> Option<Result<(), KmsError>>,
) -> envol_status {
    // SAFETY: the caller's contract.
    let mut h = try_status!(unsafe { handle(kms) });
    // SAFETY: the caller's contract.
    let id = try_status!(unsafe { crate::kms::in_key_id(key_id) });
    let service = match h.as_mut() {
        Some(Held::Plain(s)) => s,
        Some(Held::Cached(c)) => c.inner_mut(),
        None => return envol_status::ENVOL_ERR_INTERNAL,
    };
    match create(service, id) {
        None => envol_status::ENVOL_ERR_INVALID_ARGUMENT,
        Some(r) => {
            try_status!(r.map_err(envol_status::from));
            envol_status::ENVOL_OK
        }
    }
}

/// Puts a bounded cache of unwrapped data keys in front of the handle's
/// service: an attach of a volume whose key the same principal unwrapped
/// less than `max_age_ms` ago, and fewer than `max_uses` times, is answered
/// from memory; at most `max_entries` keys (1..=65536) are held, the least
/// recently used evicted first; keys are wiped on expiry, eviction and when
/// the handle is freed. Generating keys and re-wrapping always reach the
/// service. A zero or out-of-range limit is `ENVOL_ERR_INVALID_ARGUMENT`;
/// enabling it again replaces the cache (wiping it).
///
/// # Safety
/// `kms` NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_remote_kms_enable_cache(
    kms: *mut envol_remote_kms,
    max_age_ms: u64,
    max_uses: u64,
    max_entries: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let mut h = try_status!(unsafe { handle(kms) });
        let limits = CacheLimits {
            max_age: Duration::from_millis(max_age_ms),
            max_uses,
            max_entries,
        };
        if limits.check().is_err() {
            return envol_status::ENVOL_ERR_INVALID_ARGUMENT;
        }
        let inner = match h.take() {
            Some(Held::Plain(k)) => k,
            Some(Held::Cached(c)) => c.into_inner(),
            None => return envol_status::ENVOL_ERR_INTERNAL,
        };
        // `limits` was checked, so this cannot fail.
        match CachingKms::new(inner, limits) {
            Ok(c) => *h = Some(Held::Cached(c)),
            Err(_) => return envol_status::ENVOL_ERR_INTERNAL,
        }
        envol_status::ENVOL_OK
    })
}

/// Fills `*out` with a callback table whose functions call this handle's
/// service (`user` is the handle), for `envol_volume_create`/`_open` and
/// `envol_xts_init_from_blob`. Valid while the handle lives.
///
/// # Safety
/// `kms` NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_remote_kms_callbacks(
    kms: *mut envol_remote_kms,
    out: *mut envol_kms_callbacks,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        drop(try_status!(unsafe { handle(kms) }));
        if out.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        let table = callback_table::<envol_remote_kms>(kms.cast());
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write_unaligned(table) };
        envol_status::ENVOL_OK
    })
}

/// Frees a handle (closing the session or connection, wiping cached keys).
/// NULL is accepted and ignored.
///
/// # Safety
/// `kms` NULL or a handle from this module not freed before, not used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_remote_kms_free(kms: *mut envol_remote_kms) {
    guard!((), {
        if !kms.is_null() {
            // SAFETY: made by `Box::into_raw` in `publish`, per the contract.
            drop(unsafe { Box::from_raw(kms) });
        }
    })
}

impl ServiceHandle for envol_remote_kms {
    unsafe fn with_service<R>(
        user: *mut c_void,
        f: impl FnOnce(&mut dyn Kms) -> Result<R, envol_status>,
    ) -> Result<R, envol_status> {
        // SAFETY: forwarded contract.
        let mut h = unsafe { handle(user.cast()) }?;
        f(kms_of(&mut h)?)
    }
}
