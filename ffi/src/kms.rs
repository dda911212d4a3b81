//! The key-service part of the C ABI.
//!
//! - Encryption contexts from C ([`envol_kv`] arrays).
//! - The callback table through which a hypervisor plugs in its own key
//!   service transport ([`envol_kms_callbacks`]) and its adapter to the
//!   [`Kms`] trait ([`CallbackKms`]), which the rest of envol calls, e.g.
//!   `envol_xts_init_from_blob`.
//! - On hosted (`std`) builds, the reference key service `LocalKms` as an
//!   opaque heap handle (`envol_local_kms_*`), which can also hand out a
//!   callback table of its own so C code treats both alike.
// The C signatures below are the documented ABI; their argument counts are
// what C callers see, not something to fold into structs.
#![allow(clippy::too_many_arguments)]

use core::ffi::{c_char, c_void};
use core::mem::align_of;

use envol::envelope::{self, Context, DataKey};
use envol::kms::{Kms, KmsError};
use envol::xts::KeySize;
use zeroize::Zeroize;

use crate::boundary::{
    StrError, envol_status, envol_status_arg, guard_secret, in_slice, in_str, kms_result,
    try_status,
};
use crate::xts::{check_ctx, envol_xts, init_best};

/// Largest wrapped-key blob in bytes: a buffer of this size holds any blob
/// envol makes (data keys need far less: 43 + key id length + 32 or 64).
pub const ENVOL_MAX_BLOB: usize = 4203;
/// Longest master key id in bytes (not counting the NUL).
pub const ENVOL_MAX_KEY_ID: usize = 64;
/// Longest principal name in bytes (not counting the NUL).
pub const ENVOL_MAX_PRINCIPAL: usize = 256;
/// Most key/value pairs in an encryption context.
pub const ENVOL_MAX_CONTEXT_PAIRS: usize = 16;
/// Longest encryption-context key in bytes (not counting the NUL).
pub const ENVOL_MAX_CONTEXT_KEY: usize = 128;
/// Longest encryption-context value in bytes (not counting the NUL).
pub const ENVOL_MAX_CONTEXT_VALUE: usize = 256;
/// Size of a buffer that always holds a grant id and its NUL; grant-id
/// outputs must be at least this big.
pub const ENVOL_GRANT_ID_SIZE: usize = 64;
/// Most operations one grant may list.
pub const ENVOL_MAX_GRANT_OPERATIONS: usize = 32;

const _: () = assert!(ENVOL_MAX_BLOB == envelope::MAX_BLOB);
const _: () = assert!(ENVOL_MAX_KEY_ID == envelope::MAX_KEY_ID);
const _: () = assert!(ENVOL_MAX_CONTEXT_PAIRS == envelope::MAX_CONTEXT_PAIRS);
const _: () = assert!(ENVOL_MAX_CONTEXT_KEY == envelope::MAX_CONTEXT_KEY);
const _: () = assert!(ENVOL_MAX_CONTEXT_VALUE == envelope::MAX_CONTEXT_VALUE);

/// One encryption-context pair: two NUL-terminated UTF-8 strings, a key of
/// 1..=128 bytes and a value of at most 256 bytes. A context is an array of
/// at most 16 pairs with distinct keys, in any order, passed as
/// `(const envol_kv *ctx, size_t ctx_len)`; `ctx` may be NULL when
/// `ctx_len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envol_kv {
    /// The key.
    pub key: *const c_char,
    /// The value.
    pub value: *const c_char,
}

/// The state of a master key, as `envol_local_kms_describe_key` reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum envol_key_state {
    /// Usable.
    ENVOL_KEY_ENABLED = 0,
    /// Refuses cryptographic use until enabled again.
    ENVOL_KEY_DISABLED = 1,
    /// Scheduled for deletion; refuses cryptographic use; can be cancelled.
    ENVOL_KEY_PENDING_DELETION = 2,
    /// Key material destroyed.
    ENVOL_KEY_DELETED = 3,
}

/// What limits a grant, for the `constraint_kind` argument of
/// `envol_local_kms_create_grant` (passed as a plain `int`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum envol_grant_constraint {
    /// No limit on the encryption context.
    ENVOL_GRANT_NO_CONSTRAINT = 0,
    /// The call's encryption context must be exactly the given pairs.
    ENVOL_GRANT_CONTEXT_EQUALS = 1,
    /// The call's encryption context must contain the given pairs.
    ENVOL_GRANT_CONTEXT_SUBSET = 2,
}

/// A key service as a table of C callbacks: how a hypervisor plugs in its
/// own transport (a network key service, an HSM, a test double). envol
/// calls it (through its adapter to the Rust `Kms` trait, `CallbackKms`)
/// wherever it needs a data key, e.g. in `envol_xts_init_from_blob`.
///
/// Every callback gets `user` first and returns an `envol_status`; envol
/// reads the number as given, and any value it does not know (or one no key
/// service should return) counts as `ENVOL_ERR_KMS_UNAVAILABLE`. Strings are
/// NUL-terminated copies that live only during the call (principal at most
/// 256 bytes, key id at most 64); contexts are `envol_kv` arrays as above.
/// envol never trusts what a callback writes: a length that does not fit
/// the buffer it gave, or a data key that is not 32 or 64 bytes, makes the
/// call fail with `ENVOL_ERR_KMS_UNAVAILABLE`, and a failed callback's
/// outputs are discarded.
///
/// - `generate_data_key`: write a fresh data key of `dek_len` (32 or 64)
///   bytes to `dek_out` and its wrapped form (at most `blob_cap` bytes) to
///   `blob_out`, its length to `*blob_len`.
/// - `decrypt_data_key`: unwrap `blob` made under `ctx` into `dek_out`
///   (`dek_cap` bytes of room), its length (32 or 64) to `*dek_len`.
/// - `re_encrypt`: re-wrap `blob` (made under `src_ctx`) under `dest_key_id`
///   and `dst_ctx` into `blob_out` (at most `blob_cap` bytes), its length to
///   `*out_len`; may be NULL if the service cannot.
/// - `retire_context`: record that the volume named by `ctx` (whose data
///   key is `blob`) was retired, so the service never unwraps it for that
///   context again; `*kept` = 1 if it keeps such a tombstone, 0 if it
///   cannot. May be NULL (as if it always said 0).
///
/// Callbacks may be called from several threads at once when a volume is
/// shared between threads (attach of one volume while another renews its
/// lease, say): a table must be safe for that, or the caller must not share
/// its volumes. The tables of envol's own handles are.
// The function types stay inline so the header shows each signature in place.
#[allow(clippy::type_complexity)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envol_kms_callbacks {
    /// Passed unchanged as the first argument of every callback.
    pub user: *mut c_void,
    /// Generates a data key (AWS: GenerateDataKey).
    pub generate_data_key: Option<
        unsafe extern "C" fn(
            user: *mut c_void,
            principal: *const c_char,
            key_id: *const c_char,
            dek_len: usize,
            ctx: *const envol_kv,
            ctx_len: usize,
            dek_out: *mut u8,
            blob_out: *mut u8,
            blob_cap: usize,
            blob_len: *mut usize,
        ) -> envol_status_arg,
    >,
    /// Unwraps a data key (AWS: Decrypt).
    pub decrypt_data_key: Option<
        unsafe extern "C" fn(
            user: *mut c_void,
            principal: *const c_char,
            blob: *const u8,
            blob_len: usize,
            ctx: *const envol_kv,
            ctx_len: usize,
            dek_out: *mut u8,
            dek_cap: usize,
            dek_len: *mut usize,
        ) -> envol_status_arg,
    >,
    /// Re-wraps a blob under another key and context (AWS: ReEncrypt);
    /// may be NULL.
    pub re_encrypt: Option<
        unsafe extern "C" fn(
            user: *mut c_void,
            principal: *const c_char,
            blob: *const u8,
            blob_len: usize,
            src_ctx: *const envol_kv,
            src_len: usize,
            dest_key_id: *const c_char,
            dst_ctx: *const envol_kv,
            dst_len: usize,
            blob_out: *mut u8,
            blob_cap: usize,
            out_len: *mut usize,
        ) -> envol_status_arg,
    >,
    /// Records a retired volume's context (a tombstone); may be NULL.
    pub retire_context: Option<
        unsafe extern "C" fn(
            user: *mut c_void,
            principal: *const c_char,
            blob: *const u8,
            blob_len: usize,
            ctx: *const envol_kv,
            ctx_len: usize,
            kept: *mut core::ffi::c_int,
        ) -> envol_status_arg,
    >,
}

/// A context from C.
///
/// # Safety
/// If `ptr` is not NULL it must be valid for `len` reads of `envol_kv`,
/// whose non-NULL strings are NUL-terminated and unchanged during `'a`.
pub(crate) unsafe fn in_context<'a>(
    ptr: *const envol_kv,
    len: usize,
) -> Result<Context<'a>, envol_status> {
    if len == 0 {
        return Ok(Context::empty());
    }
    if ptr.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    if len > ENVOL_MAX_CONTEXT_PAIRS {
        return Err(envol_status::ENVOL_ERR_CONTEXT);
    }
    if !(ptr as usize).is_multiple_of(align_of::<envol_kv>()) {
        return Err(envol_status::ENVOL_ERR_ALIGNMENT);
    }
    // SAFETY: non-NULL, aligned, at most 16 elements; validity is the
    // caller's contract.
    let pairs = unsafe { core::slice::from_raw_parts(ptr, len) };
    let mut context = Context::empty();
    for kv in pairs {
        // SAFETY: the caller's contract on the strings.
        let key = unsafe { in_str(kv.key, ENVOL_MAX_CONTEXT_KEY) };
        // SAFETY: as above.
        let value = unsafe { in_str(kv.value, ENVOL_MAX_CONTEXT_VALUE) };
        match (key, value) {
            (Ok(k), Ok(v)) => context
                .insert(k, v)
                .map_err(|_| envol_status::ENVOL_ERR_CONTEXT)?,
            _ => return Err(envol_status::ENVOL_ERR_CONTEXT),
        }
    }
    Ok(context)
}

/// A principal from C: NULL is `ENVOL_ERR_NULL_POINTER`; over 256 bytes or
/// not UTF-8 is `ENVOL_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// As for [`in_str`].
pub(crate) unsafe fn in_principal<'a>(ptr: *const c_char) -> Result<&'a str, envol_status> {
    // SAFETY: forwarded contract.
    match unsafe { in_str(ptr, ENVOL_MAX_PRINCIPAL) } {
        Ok(s) => Ok(s),
        Err(StrError::Null) => Err(envol_status::ENVOL_ERR_NULL_POINTER),
        Err(_) => Err(envol_status::ENVOL_ERR_INVALID_ARGUMENT),
    }
}

/// A master key id from C: NULL is `ENVOL_ERR_NULL_POINTER`; over 64 bytes
/// or not UTF-8 is `ENVOL_ERR_KEY_ID`. Other checks are the service's.
///
/// # Safety
/// As for [`in_str`].
pub(crate) unsafe fn in_key_id<'a>(ptr: *const c_char) -> Result<&'a str, envol_status> {
    // SAFETY: forwarded contract.
    match unsafe { in_str(ptr, ENVOL_MAX_KEY_ID) } {
        Ok(s) => Ok(s),
        Err(StrError::Null) => Err(envol_status::ENVOL_ERR_NULL_POINTER),
        Err(_) => Err(envol_status::ENVOL_ERR_KEY_ID),
    }
}

/// Stack room for a principal and its NUL.
const PRINCIPAL_BUF: usize = ENVOL_MAX_PRINCIPAL + 1;
/// Stack room for a key id and its NUL.
const KEY_ID_BUF: usize = ENVOL_MAX_KEY_ID + 1;

/// `s` as a NUL-terminated string in an `N`-byte stack buffer; longer
/// strings, and strings holding a NUL, are `InvalidArgument`.
fn c_copy<const N: usize>(s: &str) -> Result<[u8; N], KmsError> {
    let b = s.as_bytes();
    if b.len() >= N || b.contains(&0) {
        return Err(KmsError::InvalidArgument);
    }
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// An encryption context as NUL-terminated copies on the stack, to hand to
/// a callback as an `envol_kv` array.
struct ContextCopy {
    keys: [[u8; ENVOL_MAX_CONTEXT_KEY + 1]; ENVOL_MAX_CONTEXT_PAIRS],
    values: [[u8; ENVOL_MAX_CONTEXT_VALUE + 1]; ENVOL_MAX_CONTEXT_PAIRS],
    len: usize,
}

impl ContextCopy {
    fn new(context: &Context<'_>) -> Result<ContextCopy, KmsError> {
        let mut c = ContextCopy {
            keys: [[0; ENVOL_MAX_CONTEXT_KEY + 1]; ENVOL_MAX_CONTEXT_PAIRS],
            values: [[0; ENVOL_MAX_CONTEXT_VALUE + 1]; ENVOL_MAX_CONTEXT_PAIRS],
            len: 0,
        };
        for (i, (k, v)) in context.iter().enumerate() {
            let slots = c.keys.get_mut(i).zip(c.values.get_mut(i));
            let (ks, vs) = slots.ok_or(KmsError::InvalidArgument)?;
            *ks = c_copy(k)?;
            *vs = c_copy(v)?;
            c.len = i + 1;
        }
        Ok(c)
    }

    /// The pairs, pointing into `self`: valid while `self` is neither moved
    /// nor dropped.
    fn pairs(&self) -> [envol_kv; ENVOL_MAX_CONTEXT_PAIRS] {
        let mut kv = [envol_kv {
            key: core::ptr::null(),
            value: core::ptr::null(),
        }; ENVOL_MAX_CONTEXT_PAIRS];
        for ((slot, k), v) in kv
            .iter_mut()
            .zip(&self.keys)
            .zip(&self.values)
            .take(self.len)
        {
            *slot = envol_kv {
                key: k.as_ptr().cast(),
                value: v.as_ptr().cast(),
            };
        }
        kv
    }
}

/// The [`Kms`] trait over an [`envol_kms_callbacks`] table: what envol
/// calls when a hypervisor brings its own key service.
///
/// - `generate_data_key`, `decrypt_data_key` and `re_encrypt` call the
///   callbacks of the same names; a NULL callback is `Unavailable`.
/// - `generate_data_key_without_plaintext` is built from the
///   `generate_data_key` callback: the plaintext key passes through this
///   process and is wiped at once. The service therefore sees (and its
///   policy must allow) a GenerateDataKey call.
/// - `encrypt` and `decrypt` of small secrets have no callback and are
///   always `Unavailable`.
///
/// Arguments go to the callbacks as NUL-terminated copies on the stack;
/// a principal over 256 bytes, a key id over 64, or a string holding a NUL
/// is `InvalidArgument`. Callback outputs land in stack buffers first and
/// are checked (lengths within the buffer, data keys of 32 or 64 bytes,
/// blobs of 1..=`ENVOL_MAX_BLOB` bytes) before anything reaches the caller;
/// the data-key buffer is wiped on every path.
pub struct CallbackKms {
    table: envol_kms_callbacks,
}

impl CallbackKms {
    /// Wraps a callback table.
    ///
    /// # Safety
    /// For as long as the value is used, every non-NULL function in `table`
    /// must be safe to call with `table.user` and arguments as documented on
    /// [`envol_kms_callbacks`], writing only within the buffers it is given
    /// and not unwinding.
    pub unsafe fn new(table: envol_kms_callbacks) -> CallbackKms {
        CallbackKms { table }
    }
}

impl core::fmt::Debug for CallbackKms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CallbackKms")
            .field("generate_data_key", &self.table.generate_data_key.is_some())
            .field("decrypt_data_key", &self.table.decrypt_data_key.is_some())
            .field("re_encrypt", &self.table.re_encrypt.is_some())
            .field("retire_context", &self.table.retire_context.is_some())
            .finish_non_exhaustive()
    }
}

/// A blob length reported by a callback, if it is plausible for a buffer
/// of `cap` bytes.
fn checked_blob_len(n: usize, cap: usize) -> Result<usize, KmsError> {
    if n == 0 || n > cap {
        return Err(KmsError::Unavailable);
    }
    Ok(n)
}

impl Kms for CallbackKms {
    fn generate_data_key(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        let f = self.table.generate_data_key.ok_or(KmsError::Unavailable)?;
        let p = c_copy::<PRINCIPAL_BUF>(principal)?;
        let k = c_copy::<KEY_ID_BUF>(key_id)?;
        let c = ContextCopy::new(context)?;
        let kv = c.pairs();
        let dek_len = size.key_len();
        let cap = blob_out.len().min(ENVOL_MAX_BLOB);
        let mut dek = [0u8; 64];
        let mut blob = [0u8; ENVOL_MAX_BLOB];
        let mut n = usize::MAX;
        // SAFETY: the table's contract (see `new`); every pointer is to a
        // live local: NUL-terminated strings, `c.len` pairs, 64 bytes of key
        // room (`dek_len` is 32 or 64), `cap` <= `ENVOL_MAX_BLOB` bytes.
        let status = unsafe {
            f(
                self.table.user,
                p.as_ptr().cast(),
                k.as_ptr().cast(),
                dek_len,
                kv.as_ptr(),
                c.len,
                dek.as_mut_ptr(),
                blob.as_mut_ptr(),
                cap,
                &mut n,
            )
        };
        let result = kms_result(status).and_then(|()| {
            let n = checked_blob_len(n, cap)?;
            let key = DataKey::from_bytes(&dek[..dek_len]).map_err(|_| KmsError::Unavailable)?;
            blob_out[..n].copy_from_slice(&blob[..n]);
            Ok((key, n))
        });
        dek.zeroize();
        result
    }

    fn generate_data_key_without_plaintext(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        // The data key is dropped, and so wiped, at once.
        self.generate_data_key(principal, key_id, size, context, blob_out)
            .map(|(_, n)| n)
    }

    fn decrypt_data_key(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        let f = self.table.decrypt_data_key.ok_or(KmsError::Unavailable)?;
        let p = c_copy::<PRINCIPAL_BUF>(principal)?;
        let c = ContextCopy::new(context)?;
        let kv = c.pairs();
        let mut dek = [0u8; 64];
        let mut n = usize::MAX;
        // SAFETY: the table's contract (see `new`); `blob` is a live slice,
        // the other pointers are live locals of the sizes passed.
        let status = unsafe {
            f(
                self.table.user,
                p.as_ptr().cast(),
                blob.as_ptr(),
                blob.len(),
                kv.as_ptr(),
                c.len,
                dek.as_mut_ptr(),
                dek.len(),
                &mut n,
            )
        };
        let result = kms_result(status).and_then(|()| match n {
            32 | 64 => DataKey::from_bytes(&dek[..n]).map_err(|_| KmsError::Unavailable),
            _ => Err(KmsError::Unavailable),
        });
        dek.zeroize();
        result
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
        let f = self.table.re_encrypt.ok_or(KmsError::Unavailable)?;
        let p = c_copy::<PRINCIPAL_BUF>(principal)?;
        let k = c_copy::<KEY_ID_BUF>(dest_key_id)?;
        let src = ContextCopy::new(source_context)?;
        let src_kv = src.pairs();
        let dst = ContextCopy::new(dest_context)?;
        let dst_kv = dst.pairs();
        let cap = blob_out.len().min(ENVOL_MAX_BLOB);
        let mut out = [0u8; ENVOL_MAX_BLOB];
        let mut n = usize::MAX;
        // SAFETY: the table's contract (see `new`); `blob` is a live slice,
        // the other pointers are live locals of the sizes passed.
        let status = unsafe {
            f(
                self.table.user,
                p.as_ptr().cast(),
                blob.as_ptr(),
                blob.len(),
                src_kv.as_ptr(),
                src.len,
                k.as_ptr().cast(),
                dst_kv.as_ptr(),
                dst.len,
                out.as_mut_ptr(),
                cap,
                &mut n,
            )
        };
        kms_result(status)?;
        let n = checked_blob_len(n, cap)?;
        blob_out[..n].copy_from_slice(&out[..n]);
        Ok(n)
    }

    fn retire_context(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<bool, KmsError> {
        let Some(f) = self.table.retire_context else {
            return Ok(false);
        };
        let p = c_copy::<PRINCIPAL_BUF>(principal)?;
        let c = ContextCopy::new(context)?;
        let kv = c.pairs();
        let mut kept: core::ffi::c_int = -1;
        // SAFETY: the table's contract (see `new`); `blob` is a live slice,
        // the other pointers are live locals.
        let status = unsafe {
            f(
                self.table.user,
                p.as_ptr().cast(),
                blob.as_ptr(),
                blob.len(),
                kv.as_ptr(),
                c.len,
                &mut kept,
            )
        };
        kms_result(status)?;
        match kept {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(KmsError::Unavailable),
        }
    }

    fn encrypt(
        &mut self,
        _principal: &str,
        _key_id: &str,
        _context: &Context<'_>,
        _plaintext: &[u8],
        _blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        Err(KmsError::Unavailable)
    }

    fn decrypt(
        &mut self,
        _principal: &str,
        _blob: &[u8],
        _context: &Context<'_>,
        _out: &mut [u8],
    ) -> Result<usize, KmsError> {
        Err(KmsError::Unavailable)
    }
}

/// Unwraps a data key through a key service's callback table and
/// initialises `ctx` with it on the best available backend, as
/// `envol_xts_init` does. The plaintext data key never reaches the caller:
/// the callback writes it into an envol stack buffer, and every buffer that
/// held it is wiped before this returns.
///
/// Only `kms->decrypt_data_key` is called; if it is NULL the result is
/// `ENVOL_ERR_NULL_POINTER`. The key service's refusals come back as its
/// status (`ENVOL_ERR_ACCESS_DENIED`, `ENVOL_ERR_INVALID_CIPHERTEXT`, ...);
/// a callback status envol does not know, or outputs that do not add up,
/// give `ENVOL_ERR_KMS_UNAVAILABLE`. On any error `ctx` is left as it was.
///
/// # Safety
/// `ctx` NULL or a writable `envol_xts`; `kms` NULL or a readable
/// `envol_kms_callbacks` whose callbacks keep its contract; `principal` NULL
/// or a NUL-terminated string; `blob` NULL or valid for `blob_len` reads;
/// `enc_ctx` as for every context argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_init_from_blob(
    ctx: *mut envol_xts,
    kms: *const envol_kms_callbacks,
    principal: *const c_char,
    blob: *const u8,
    blob_len: usize,
    enc_ctx: *const envol_kv,
    enc_ctx_len: usize,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        try_status!(check_ctx(ctx));
        if kms.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        if !(kms as usize).is_multiple_of(align_of::<envol_kms_callbacks>()) {
            return envol_status::ENVOL_ERR_ALIGNMENT;
        }
        // SAFETY: non-NULL and aligned; readable per the contract.
        let table = unsafe { kms.read() };
        if table.decrypt_data_key.is_none() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: the caller's contract on each argument.
        let principal = try_status!(unsafe { in_principal(principal) });
        // SAFETY: as above.
        let blob = try_status!(unsafe { in_slice(blob, blob_len) });
        // SAFETY: as above.
        let context = try_status!(unsafe { in_context(enc_ctx, enc_ctx_len) });
        // SAFETY: the caller's contract on the table.
        let mut service = unsafe { CallbackKms::new(table) };
        let dek = try_status!(service.decrypt_data_key(principal, blob, &context));
        // SAFETY: `ctx` was checked above and is writable per the contract.
        try_status!(unsafe { init_best(ctx, dek.as_bytes()) });
        // `dek` is wiped as it drops here.
        envol_status::ENVOL_OK
    })
}
