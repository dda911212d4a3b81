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
    StrError, envol_status, envol_status_arg, guard, in_slice, in_str, kms_result, try_status,
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
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
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

#[cfg(feature = "std")]
pub use local::*;

/// The reference key service as a heap handle (hosted builds only: it needs
/// the OS's randomness and clock, and allocates).
#[cfg(feature = "std")]
mod local {
    use core::ffi::{c_char, c_int, c_void};
    use core::mem::align_of;
    use std::boxed::Box;
    use std::string::String;
    use std::vec::Vec;

    use envol::envelope::{self, WrappedKey};
    use envol::kms::audit::{AuditEvent, Outcome, verify_chain};
    use envol::kms::policy::{Action, MAX_POLICY_BYTES, Policy};
    use envol::kms::{
        GrantConstraint, KeyState, Kms, KmsError, LocalKms, OsEntropy, SealError, SystemClock,
    };
    use envol::xts::KeySize;
    use zeroize::Zeroize;

    use super::{
        ENVOL_GRANT_ID_SIZE, ENVOL_MAX_BLOB, ENVOL_MAX_GRANT_OPERATIONS, envol_grant_constraint,
        envol_key_state, envol_kms_callbacks, envol_kv, in_context, in_key_id, in_principal,
    };
    use crate::boundary::{
        StrError, check_span, envol_status, envol_status_arg, guard, in_slice, in_str, try_status,
    };

    /// The reference key service (`LocalKms`) as an opaque handle: master
    /// keys made inside with the OS's randomness and never handed out, key
    /// policies, grants, rotation, deletion windows on the system clock, and
    /// a hash-chained audit log of every call, allowed or refused.
    ///
    /// Create with `envol_local_kms_new` or `envol_local_kms_unseal`, free
    /// with `envol_local_kms_free`. Not thread-safe: use a handle from one
    /// thread at a time (calls on different handles may run in parallel).
    pub struct envol_local_kms {
        kms: LocalKms,
    }

    fn service() -> LocalKms {
        LocalKms::new(Box::new(OsEntropy), Box::new(SystemClock), None)
    }

    fn seal_status(e: SealError) -> envol_status {
        match e {
            SealError::Rng => envol_status::ENVOL_ERR_KMS_UNAVAILABLE,
            _ => envol_status::ENVOL_ERR_SEALED_STORE,
        }
    }

    /// The service behind a handle, for reading.
    ///
    /// # Safety
    /// `kms` NULL or a live handle not used elsewhere during `'a`.
    unsafe fn handle_ref<'a>(kms: *const envol_local_kms) -> Result<&'a LocalKms, envol_status> {
        if kms.is_null() {
            return Err(envol_status::ENVOL_ERR_NULL_POINTER);
        }
        if !(kms as usize).is_multiple_of(align_of::<envol_local_kms>()) {
            return Err(envol_status::ENVOL_ERR_ALIGNMENT);
        }
        // SAFETY: a live handle per the contract.
        Ok(unsafe { &(*kms).kms })
    }

    /// The service behind a handle.
    ///
    /// # Safety
    /// As for [`handle_ref`].
    unsafe fn handle<'a>(kms: *mut envol_local_kms) -> Result<&'a mut LocalKms, envol_status> {
        // SAFETY: forwarded contract.
        unsafe { handle_ref(kms) }?;
        // SAFETY: checked above; a live handle used by this call alone.
        Ok(unsafe { &mut (*kms).kms })
    }

    /// A policy document from C: NULL is `ENVOL_ERR_NULL_POINTER`; anything
    /// `Policy::parse` refuses (or over its size limit, or not UTF-8) is
    /// `ENVOL_ERR_POLICY`.
    ///
    /// # Safety
    /// As for [`in_str`].
    unsafe fn in_policy(json: *const c_char) -> Result<Policy, envol_status> {
        // SAFETY: forwarded contract.
        match unsafe { in_str(json, MAX_POLICY_BYTES) } {
            Ok(s) => Policy::parse(s).map_err(|_| envol_status::ENVOL_ERR_POLICY),
            Err(StrError::Null) => Err(envol_status::ENVOL_ERR_NULL_POINTER),
            Err(_) => Err(envol_status::ENVOL_ERR_POLICY),
        }
    }

    /// The common shape of a management call: handle, principal, key id,
    /// then the service.
    ///
    /// # Safety
    /// As for [`handle`] and [`in_str`].
    unsafe fn manage<T>(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        f: impl FnOnce(&mut LocalKms, &str, &str) -> Result<T, KmsError>,
    ) -> Result<T, envol_status> {
        // SAFETY: forwarded contract.
        let k = unsafe { handle(kms) }?;
        // SAFETY: forwarded contract.
        let p = unsafe { in_principal(principal) }?;
        // SAFETY: forwarded contract.
        let id = unsafe { in_key_id(key_id) }?;
        f(k, p, id).map_err(envol_status::from)
    }

    /// Creates an empty key service (no keys, empty audit log) using the
    /// OS's randomness and the system clock, and stores its handle in
    /// `*out`.
    ///
    /// # Safety
    /// `out` NULL or valid for one pointer write.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_new(out: *mut *mut envol_local_kms) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            if out.is_null() {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            let h = Box::into_raw(Box::new(envol_local_kms { kms: service() }));
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out.write(h) };
            envol_status::ENVOL_OK
        })
    }

    /// Frees a handle; its master keys are zeroized as they are dropped.
    /// NULL is accepted and ignored.
    ///
    /// # Safety
    /// `kms` NULL or a handle from `envol_local_kms_new`/`_unseal` not freed
    /// before and not used after.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_free(kms: *mut envol_local_kms) {
        guard!((), {
            if !kms.is_null() {
                // SAFETY: a handle made by `Box::into_raw`, per the contract.
                drop(unsafe { Box::from_raw(kms) });
            }
        })
    }

    /// Seals the whole service (master keys, states, policies, grants,
    /// protected volumes, the audit chain's head) under the 32-byte
    /// `root_key` with AES-256-GCM into `out`, and stores its length in
    /// `*out_len`.
    ///
    /// Exception to "a failed call writes nothing": when `out_cap` is too
    /// small the result is `ENVOL_ERR_BUFFER_TOO_SMALL` and `*out_len` is set
    /// to the size needed (nothing is written to `out`). `out` may be NULL
    /// when `out_cap` is 0, to ask for the size. The size depends only on
    /// what the service holds, so it stays right until the next change.
    ///
    /// # Safety
    /// `kms` NULL or a live handle; `root_key` NULL or valid for 32 reads;
    /// `out` NULL or valid for `out_cap` writes; `out_len` NULL or writable.
    ///
    /// cbindgen:ptrs-as-arrays=[[root_key;32]]
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_seal(
        kms: *mut envol_local_kms,
        root_key: *const u8,
        out: *mut u8,
        out_cap: usize,
        out_len: *mut usize,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let k = try_status!(unsafe { handle(kms) });
            if root_key.is_null() || out_len.is_null() || (out.is_null() && out_cap != 0) {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            if !out.is_null() {
                try_status!(check_span(out as usize, out_cap));
            }
            // SAFETY: non-NULL and valid for 32 reads per the contract.
            let mut root = unsafe { root_key.cast::<[u8; 32]>().read_unaligned() };
            let sealed = k.seal(&root);
            root.zeroize();
            let sealed = try_status!(sealed.map_err(seal_status));
            if sealed.len() > out_cap {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { out_len.write(sealed.len()) };
                return envol_status::ENVOL_ERR_BUFFER_TOO_SMALL;
            }
            // SAFETY: `out` is non-NULL (`out_cap` >= the length, which is
            // not 0) and valid for `out_cap` writes; `sealed` is our own.
            unsafe {
                core::ptr::copy_nonoverlapping(sealed.as_ptr(), out, sealed.len());
                out_len.write(sealed.len());
            }
            envol_status::ENVOL_OK
        })
    }

    /// Opens a store made by `envol_local_kms_seal` with the same
    /// `root_key`, and stores a new handle in `*out`; the old handle (if
    /// still alive) is not affected. The new service's audit log starts
    /// empty and continues the sealed chain. A wrong root key, a damaged or
    /// truncated store, or a format this library does not read is
    /// `ENVOL_ERR_SEALED_STORE`.
    ///
    /// # Safety
    /// `root_key` NULL or valid for 32 reads; `in` NULL or valid for `len`
    /// reads; `out` NULL or valid for one pointer write.
    ///
    /// cbindgen:ptrs-as-arrays=[[root_key;32]]
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_unseal(
        root_key: *const u8,
        r#in: *const u8,
        len: usize,
        out: *mut *mut envol_local_kms,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            if root_key.is_null() || out.is_null() {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            // SAFETY: the caller's contract.
            let bytes = try_status!(unsafe { in_slice(r#in, len) });
            // SAFETY: non-NULL and valid for 32 reads per the contract.
            let mut root = unsafe { root_key.cast::<[u8; 32]>().read_unaligned() };
            let opened = LocalKms::unseal(
                &root,
                bytes,
                Box::new(OsEntropy),
                Box::new(SystemClock),
                None,
            );
            root.zeroize();
            let kms = try_status!(opened.map_err(seal_status));
            let h = Box::into_raw(Box::new(envol_local_kms { kms }));
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out.write(h) };
            envol_status::ENVOL_OK
        })
    }

    /// Creates master key `key_id` with a fresh backing version and the key
    /// policy `policy_json` (AWS KMS policy JSON with `"Envol"` principals).
    /// Audited as `kms:PutKeyPolicy` by `creator`. An invalid or already
    /// used key id is `ENVOL_ERR_KEY_ID`, an invalid policy
    /// `ENVOL_ERR_POLICY`.
    ///
    /// # Safety
    /// `kms` NULL or a live handle; each string NULL or NUL-terminated.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_create_key(
        kms: *mut envol_local_kms,
        creator: *const c_char,
        key_id: *const c_char,
        policy_json: *const c_char,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let k = try_status!(unsafe { handle(kms) });
            // SAFETY: as above.
            let creator = try_status!(unsafe { in_principal(creator) });
            // SAFETY: as above.
            let id = try_status!(unsafe { in_key_id(key_id) });
            // SAFETY: as above.
            let policy = try_status!(unsafe { in_policy(policy_json) });
            match k.create_key(creator, id, policy) {
                Ok(()) => envol_status::ENVOL_OK,
                // The service's only argument checks here are on the id.
                Err(KmsError::InvalidArgument) => envol_status::ENVOL_ERR_KEY_ID,
                Err(e) => e.into(),
            }
        })
    }

    /// Replaces the key policy of `key_id` (needs `kms:PutKeyPolicy`).
    ///
    /// # Safety
    /// As for [`envol_local_kms_create_key`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_put_key_policy(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        policy_json: *const c_char,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let k = try_status!(unsafe { handle(kms) });
            // SAFETY: as above.
            let p = try_status!(unsafe { in_principal(principal) });
            // SAFETY: as above.
            let id = try_status!(unsafe { in_key_id(key_id) });
            // SAFETY: as above.
            let policy = try_status!(unsafe { in_policy(policy_json) });
            try_status!(k.put_key_policy(p, id, policy));
            envol_status::ENVOL_OK
        })
    }

    /// Disabled → Enabled (needs `kms:EnableKey`).
    ///
    /// # Safety
    /// `kms` NULL or a live handle; `principal`, `key_id` NULL or
    /// NUL-terminated.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_enable_key(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: forwarded contract.
            try_status!(unsafe { manage(kms, principal, key_id, |k, p, id| k.enable_key(p, id)) });
            envol_status::ENVOL_OK
        })
    }

    /// Enabled → Disabled (needs `kms:DisableKey`): the key then refuses
    /// cryptographic use with `ENVOL_ERR_KEY_DISABLED`.
    ///
    /// # Safety
    /// As for [`envol_local_kms_enable_key`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_disable_key(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: forwarded contract.
            try_status!(unsafe { manage(kms, principal, key_id, |k, p, id| k.disable_key(p, id)) });
            envol_status::ENVOL_OK
        })
    }

    /// Schedules deletion of `key_id` in `days` (7..=30) days and stores the
    /// deletion time (seconds since the Unix epoch) in `*delete_at`. A key
    /// that still protects volumes needs `force` != 0, else
    /// `ENVOL_ERR_KEY_IN_USE`. Until then the key refuses cryptographic use
    /// with `ENVOL_ERR_KEY_PENDING_DELETION`.
    ///
    /// # Safety
    /// As for [`envol_local_kms_enable_key`]; `delete_at` NULL or writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_schedule_key_deletion(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        days: u32,
        force: c_int,
        delete_at: *mut u64,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            if delete_at.is_null() {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            // SAFETY: forwarded contract.
            let at = try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| {
                    k.schedule_key_deletion(p, id, days, force != 0)
                })
            });
            // SAFETY: non-NULL and writable per the contract.
            unsafe { delete_at.write(at) };
            envol_status::ENVOL_OK
        })
    }

    /// Cancels a scheduled deletion; the key is then disabled (as in AWS
    /// KMS) until enabled again.
    ///
    /// # Safety
    /// As for [`envol_local_kms_enable_key`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_cancel_key_deletion(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: forwarded contract.
            try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| {
                    k.cancel_key_deletion(p, id)
                })
            });
            envol_status::ENVOL_OK
        })
    }

    /// Adds a backing version to `key_id` now (needs
    /// `kms:RotateKeyOnDemand`) and stores its number in `*new_version`. New
    /// data keys are wrapped under it; blobs made under older versions still
    /// unwrap.
    ///
    /// # Safety
    /// As for [`envol_local_kms_enable_key`]; `new_version` NULL or writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_rotate_key(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        new_version: *mut u32,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            if new_version.is_null() {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            // SAFETY: forwarded contract.
            let v = try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| {
                    k.rotate_key_on_demand(p, id)
                })
            });
            // SAFETY: non-NULL and writable per the contract.
            unsafe { new_version.write(v) };
            envol_status::ENVOL_OK
        })
    }

    /// Turns on automatic rotation of `key_id` every `period_days`
    /// (1..=2560) days, applied on the service's next call after each
    /// period.
    ///
    /// # Safety
    /// As for [`envol_local_kms_enable_key`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_enable_key_rotation(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        period_days: u32,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: forwarded contract.
            try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| {
                    k.enable_key_rotation(p, id, period_days)
                })
            });
            envol_status::ENVOL_OK
        })
    }

    /// Turns off automatic rotation of `key_id`.
    ///
    /// # Safety
    /// As for [`envol_local_kms_enable_key`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_disable_key_rotation(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: forwarded contract.
            try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| {
                    k.disable_key_rotation(p, id)
                })
            });
            envol_status::ENVOL_OK
        })
    }

    /// Stores the state of `key_id` in `*state` and its number of backing
    /// versions in `*backing_versions` (needs `kms:DescribeKey`).
    ///
    /// # Safety
    /// As for [`envol_local_kms_enable_key`]; `state` and `backing_versions`
    /// NULL or writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_describe_key(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        state: *mut envol_key_state,
        backing_versions: *mut u32,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            if state.is_null() || backing_versions.is_null() {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            // SAFETY: forwarded contract.
            let info = try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| k.describe_key(p, id))
            });
            let s = match info.state {
                KeyState::Enabled => envol_key_state::ENVOL_KEY_ENABLED,
                KeyState::Disabled => envol_key_state::ENVOL_KEY_DISABLED,
                KeyState::PendingDeletion { .. } => envol_key_state::ENVOL_KEY_PENDING_DELETION,
                KeyState::Deleted => envol_key_state::ENVOL_KEY_DELETED,
            };
            // SAFETY: non-NULL and writable per the contract.
            unsafe {
                state.write(s);
                backing_versions.write(info.backing_versions);
            }
            envol_status::ENVOL_OK
        })
    }

    /// Grant operations from C: each a NUL-terminated action name such as
    /// `"kms:Decrypt"`.
    ///
    /// # Safety
    /// `ops` NULL or valid for `n` reads of pointers to NUL-terminated
    /// strings.
    unsafe fn in_operations(
        ops: *const *const c_char,
        n: usize,
    ) -> Result<Vec<Action>, envol_status> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if ops.is_null() {
            return Err(envol_status::ENVOL_ERR_NULL_POINTER);
        }
        if n > ENVOL_MAX_GRANT_OPERATIONS {
            return Err(envol_status::ENVOL_ERR_INVALID_ARGUMENT);
        }
        if !(ops as usize).is_multiple_of(align_of::<*const c_char>()) {
            return Err(envol_status::ENVOL_ERR_ALIGNMENT);
        }
        // SAFETY: non-NULL, aligned, at most 32 elements, per the contract.
        let names = unsafe { core::slice::from_raw_parts(ops, n) };
        let mut actions = Vec::with_capacity(n);
        for &name in names {
            // SAFETY: the caller's contract on each string.
            let action = match unsafe { in_str(name, 64) } {
                Ok(s) => Action::from_name(s).ok_or(envol_status::ENVOL_ERR_INVALID_ARGUMENT)?,
                Err(StrError::Null) => return Err(envol_status::ENVOL_ERR_NULL_POINTER),
                Err(_) => return Err(envol_status::ENVOL_ERR_INVALID_ARGUMENT),
            };
            actions.push(action);
        }
        Ok(actions)
    }

    /// Lets `grantee` perform `operations` (`n_ops` action names such as
    /// `"kms:Decrypt"`, `"kms:GenerateDataKey"`) on `key_id`, limited by
    /// `constraint_kind` (an `envol_grant_constraint`: 0 none, 1 the call's
    /// context must equal `constraint`, 2 it must contain `constraint`).
    /// With kind 0, `constraint_len` must be 0. `retiring_principal` (may be
    /// NULL) may retire the grant besides the grantee. Needs
    /// `kms:CreateGrant`.
    ///
    /// Writes the new grant's id, NUL-terminated, to `grant_id_out`, which
    /// must have room for `ENVOL_GRANT_ID_SIZE` bytes: a smaller
    /// `grant_id_cap` is `ENVOL_ERR_BUFFER_TOO_SMALL` before any grant is
    /// made. An unknown action name or constraint kind is
    /// `ENVOL_ERR_INVALID_ARGUMENT`; an invalid constraint context
    /// `ENVOL_ERR_CONTEXT`.
    ///
    /// # Safety
    /// `kms` NULL or a live handle; strings NULL or NUL-terminated;
    /// `operations` NULL or valid for `n_ops` reads; `constraint` as for
    /// every context argument; `grant_id_out` NULL or valid for
    /// `grant_id_cap` writes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_create_grant(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        grantee: *const c_char,
        operations: *const *const c_char,
        n_ops: usize,
        constraint_kind: c_int,
        constraint: *const envol_kv,
        constraint_len: usize,
        retiring_principal: *const c_char,
        grant_id_out: *mut c_char,
        grant_id_cap: usize,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract on every argument.
            let k = try_status!(unsafe { handle(kms) });
            // SAFETY: as above.
            let p = try_status!(unsafe { in_principal(principal) });
            // SAFETY: as above.
            let id = try_status!(unsafe { in_key_id(key_id) });
            // SAFETY: as above.
            let grantee = try_status!(unsafe { in_principal(grantee) });
            // SAFETY: as above.
            let ops = try_status!(unsafe { in_operations(operations, n_ops) });
            // SAFETY: as above.
            let pairs = try_status!(unsafe { in_context(constraint, constraint_len) });
            let owned: Vec<(String, String)> =
                pairs.iter().map(|(k, v)| (k.into(), v.into())).collect();
            let limit = match constraint_kind {
                c if c == envol_grant_constraint::ENVOL_GRANT_NO_CONSTRAINT as c_int => {
                    if constraint_len != 0 {
                        return envol_status::ENVOL_ERR_INVALID_ARGUMENT;
                    }
                    None
                }
                c if c == envol_grant_constraint::ENVOL_GRANT_CONTEXT_EQUALS as c_int => {
                    Some(GrantConstraint::ContextEquals(owned))
                }
                c if c == envol_grant_constraint::ENVOL_GRANT_CONTEXT_SUBSET as c_int => {
                    Some(GrantConstraint::ContextSubset(owned))
                }
                _ => return envol_status::ENVOL_ERR_INVALID_ARGUMENT,
            };
            let retiring = if retiring_principal.is_null() {
                None
            } else {
                // SAFETY: as above.
                Some(try_status!(unsafe { in_principal(retiring_principal) }))
            };
            if grant_id_out.is_null() {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            if grant_id_cap < ENVOL_GRANT_ID_SIZE {
                return envol_status::ENVOL_ERR_BUFFER_TOO_SMALL;
            }
            try_status!(check_span(grant_id_out as usize, grant_id_cap));
            let gid = try_status!(k.create_grant(p, id, grantee, &ops, limit, retiring));
            if gid.len() >= ENVOL_GRANT_ID_SIZE || gid.as_bytes().contains(&0) {
                // Cannot happen with today's ids; undo rather than leave a
                // grant nobody can name.
                let _ = k.revoke_grant(p, id, &gid);
                return envol_status::ENVOL_ERR_INTERNAL;
            }
            // SAFETY: `grant_id_out` is valid for `grant_id_cap` >= 64 writes
            // per the contract, and the id and its NUL take fewer.
            unsafe {
                core::ptr::copy_nonoverlapping(gid.as_ptr(), grant_id_out.cast::<u8>(), gid.len());
                grant_id_out.add(gid.len()).write(0);
            }
            envol_status::ENVOL_OK
        })
    }

    /// A grant id from C.
    ///
    /// # Safety
    /// As for [`in_str`].
    unsafe fn in_grant_id<'a>(ptr: *const c_char) -> Result<&'a str, envol_status> {
        // SAFETY: forwarded contract.
        match unsafe { in_str(ptr, ENVOL_GRANT_ID_SIZE - 1) } {
            Ok(s) => Ok(s),
            Err(StrError::Null) => Err(envol_status::ENVOL_ERR_NULL_POINTER),
            Err(_) => Err(envol_status::ENVOL_ERR_INVALID_ARGUMENT),
        }
    }

    /// Retires grant `grant_id` of `key_id`: allowed for its grantee and its
    /// retiring principal, or by policy (`kms:RetireGrant`). An unknown
    /// grant is `ENVOL_ERR_KEY_NOT_FOUND`.
    ///
    /// # Safety
    /// `kms` NULL or a live handle; strings NULL or NUL-terminated.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_retire_grant(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        grant_id: *const c_char,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let gid = try_status!(unsafe { in_grant_id(grant_id) });
            // SAFETY: as above.
            try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| {
                    k.retire_grant(p, id, gid)
                })
            });
            envol_status::ENVOL_OK
        })
    }

    /// Revokes grant `grant_id` of `key_id` (needs `kms:RevokeGrant`). An
    /// unknown grant is `ENVOL_ERR_KEY_NOT_FOUND`.
    ///
    /// # Safety
    /// As for [`envol_local_kms_retire_grant`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_revoke_grant(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        grant_id: *const c_char,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let gid = try_status!(unsafe { in_grant_id(grant_id) });
            // SAFETY: as above.
            try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| {
                    k.revoke_grant(p, id, gid)
                })
            });
            envol_status::ENVOL_OK
        })
    }

    /// Stores the number of grants on `key_id` in `*count` (needs
    /// `kms:ListGrants`).
    ///
    /// # Safety
    /// As for [`envol_local_kms_enable_key`]; `count` NULL or writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_grant_count(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        count: *mut usize,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            if count.is_null() {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            // SAFETY: forwarded contract.
            let grants = try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| k.list_grants(p, id))
            });
            // SAFETY: non-NULL and writable per the contract.
            unsafe { count.write(grants.len()) };
            envol_status::ENVOL_OK
        })
    }

    /// Stores in `*count` how many distinct encryption contexts (volumes)
    /// `key_id` has wrapped data keys for: what deleting it would make
    /// unreadable (needs `kms:ListProtectedVolumes`).
    ///
    /// # Safety
    /// As for [`envol_local_kms_grant_count`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_protected_volume_count(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        count: *mut usize,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            if count.is_null() {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            // SAFETY: forwarded contract.
            let volumes = try_status!(unsafe {
                manage(kms, principal, key_id, |k, p, id| {
                    k.protected_volumes(p, id)
                })
            });
            // SAFETY: non-NULL and writable per the contract.
            unsafe { count.write(volumes.len()) };
            envol_status::ENVOL_OK
        })
    }

    /// The number of events in the handle's in-memory audit log, or 0 for
    /// NULL: every call since the handle was created or unsealed, up to the
    /// service's in-memory window (the oldest events are then dropped; the
    /// chain continues and still verifies).
    ///
    /// # Safety
    /// `kms` NULL or a live handle.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_audit_len(kms: *const envol_local_kms) -> usize {
        guard!(0, {
            // SAFETY: the caller's contract.
            match unsafe { handle_ref(kms) } {
                Ok(k) => k.audit_log().len(),
                Err(_) => 0,
            }
        })
    }

    /// `s` with bytes that would make an audit line ambiguous or span lines
    /// (controls, space, `\`, `=`, `,`, `{`, `}`) written as `\xNN`.
    fn escaped(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for ch in s.chars() {
            if ch.is_control() || matches!(ch, ' ' | '\\' | '=' | ',' | '{' | '}') {
                let mut buf = [0u8; 4];
                for b in ch.encode_utf8(&mut buf).bytes() {
                    out.push_str(&std::format!("\\x{b:02x}"));
                }
            } else {
                out.push(ch);
            }
        }
        out
    }

    /// One audit event as a human-readable line.
    pub(crate) fn audit_line(e: &AuditEvent) -> String {
        let context: Vec<String> = e
            .context
            .iter()
            .map(|(k, v)| std::format!("{}={}", escaped(k), escaped(v)))
            .collect();
        let outcome = match e.outcome {
            Outcome::Allowed => envol_status::ENVOL_OK,
            Outcome::Refused(err) => envol_status::from(err),
        };
        let hash: String = e.hash[..8]
            .iter()
            .map(|b| std::format!("{b:02x}"))
            .collect();
        std::format!(
            "seq={} time={} principal={} action={} key={} context={{{}}} outcome={} hash={}",
            e.seq,
            e.time,
            escaped(&e.principal),
            e.action.name(),
            escaped(&e.key_id),
            context.join(","),
            outcome.name_cstr().to_string_lossy(),
            hash,
        )
    }

    /// Writes audit event `index` (0 = oldest held) as one NUL-terminated
    /// human-readable line to `buf` and its length (without the NUL) to
    /// `*len`, e.g.
    /// `seq=3 time=1700000000 principal=mallory action=kms:Decrypt key=disk-key context={volume=vol-1} outcome=ENVOL_ERR_ACCESS_DENIED hash=0123456789abcdef`
    /// (`hash` is the first 8 bytes of the event's chain hash; in names and
    /// context strings, controls, space, `\`, `=`, `,`, `{` and `}` appear
    /// as `\xNN`). An index past the end is `ENVOL_ERR_INVALID_ARGUMENT`.
    ///
    /// Exception to "a failed call writes nothing": when `cap` is too small
    /// the result is `ENVOL_ERR_BUFFER_TOO_SMALL` and `*len` is set to the
    /// buffer size needed, NUL included (nothing is written to `buf`). `buf`
    /// may be NULL when `cap` is 0, to ask for the size.
    ///
    /// # Safety
    /// `kms` NULL or a live handle; `buf` NULL or valid for `cap` writes;
    /// `len` NULL or writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_audit_line(
        kms: *const envol_local_kms,
        index: usize,
        buf: *mut c_char,
        cap: usize,
        len: *mut usize,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let k = try_status!(unsafe { handle_ref(kms) });
            if len.is_null() || (buf.is_null() && cap != 0) {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            if !buf.is_null() {
                try_status!(check_span(buf as usize, cap));
            }
            let Some(event) = k.audit_log().get(index) else {
                return envol_status::ENVOL_ERR_INVALID_ARGUMENT;
            };
            let line = audit_line(event);
            let need = line.len() + 1;
            if need > cap {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { len.write(need) };
                return envol_status::ENVOL_ERR_BUFFER_TOO_SMALL;
            }
            // SAFETY: `buf` is non-NULL (`cap` >= `need` > 0) and valid for
            // `cap` writes; `line` is our own.
            unsafe {
                core::ptr::copy_nonoverlapping(line.as_ptr(), buf.cast::<u8>(), line.len());
                buf.add(line.len()).write(0);
                len.write(line.len());
            }
            envol_status::ENVOL_OK
        })
    }

    /// Checks the handle's audit log: consecutive sequence numbers, each
    /// event linked to the one before and carrying its own correct hash
    /// (and, for a log starting at event 0, a zero first link).
    /// `ENVOL_ERR_AUDIT_FAILED` if it does not verify.
    ///
    /// # Safety
    /// `kms` NULL or a live handle.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_audit_verify(
        kms: *const envol_local_kms,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let k = try_status!(unsafe { handle_ref(kms) });
            let log = k.audit_log();
            let from_genesis = log.first().is_some_and(|e| e.seq == 0);
            match verify_chain(log, from_genesis) {
                Ok(()) => envol_status::ENVOL_OK,
                Err(_) => envol_status::ENVOL_ERR_AUDIT_FAILED,
            }
        })
    }

    /// Generates a data key through any [`Kms`]; see
    /// [`envol_local_kms_generate_data_key`].
    ///
    /// # Safety
    /// As for [`envol_local_kms_generate_data_key`], without `kms`.
    pub(crate) unsafe fn generate_data_key(
        service: &mut dyn Kms,
        principal: *const c_char,
        key_id: *const c_char,
        dek_len: usize,
        ctx: *const envol_kv,
        ctx_len: usize,
        dek_out: *mut u8,
        blob_out: *mut u8,
        blob_cap: usize,
        blob_len: *mut usize,
    ) -> Result<(), envol_status> {
        // SAFETY: the caller's contract on each argument.
        let p = unsafe { in_principal(principal) }?;
        // SAFETY: as above.
        let id = unsafe { in_key_id(key_id) }?;
        // SAFETY: as above.
        let context = unsafe { in_context(ctx, ctx_len) }?;
        if dek_out.is_null() || blob_out.is_null() || blob_len.is_null() {
            return Err(envol_status::ENVOL_ERR_NULL_POINTER);
        }
        let size =
            KeySize::from_key_len(dek_len).map_err(|_| envol_status::ENVOL_ERR_KEY_LENGTH)?;
        check_span(dek_out as usize, dek_len)?;
        check_span(blob_out as usize, blob_cap)?;
        if blob_cap < envelope::blob_len(id.len(), dek_len) {
            return Err(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL);
        }
        let mut blob = [0u8; ENVOL_MAX_BLOB];
        let cap = blob_cap.min(ENVOL_MAX_BLOB);
        let (dek, n) = service.generate_data_key(p, id, size, &context, &mut blob[..cap])?;
        let key = dek.as_bytes();
        if n == 0 || n > cap || key.len() != dek_len {
            return Err(envol_status::ENVOL_ERR_INTERNAL);
        }
        // SAFETY: valid for `dek_len` and `blob_cap` >= `n` writes per the
        // contract; the sources are our own.
        unsafe {
            core::ptr::copy_nonoverlapping(key.as_ptr(), dek_out, dek_len);
            core::ptr::copy_nonoverlapping(blob.as_ptr(), blob_out, n);
            blob_len.write(n);
        }
        Ok(())
    }

    /// Makes a fresh data key of `dek_len` bytes (32: XTS-AES-128, 64:
    /// XTS-AES-256, else `ENVOL_ERR_KEY_LENGTH`) under master key `key_id`,
    /// bound to the encryption context `ctx`; writes it in plaintext to
    /// `dek_out` (`dek_len` bytes) and wrapped to `blob_out`, whose length
    /// goes to `*blob_len`. `blob_cap` must be at least
    /// 43 + strlen(key_id) + dek_len (`ENVOL_MAX_BLOB` always is), else
    /// `ENVOL_ERR_BUFFER_TOO_SMALL` before anything is made. Needs
    /// `kms:GenerateDataKey`; the context is recorded as protected by the
    /// key.
    ///
    /// # Safety
    /// `kms` NULL or a live handle; strings NULL or NUL-terminated; `ctx` as
    /// for every context argument; `dek_out` NULL or valid for `dek_len`
    /// writes; `blob_out` NULL or valid for `blob_cap` writes; `blob_len`
    /// NULL or writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_generate_data_key(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        key_id: *const c_char,
        dek_len: usize,
        ctx: *const envol_kv,
        ctx_len: usize,
        dek_out: *mut u8,
        blob_out: *mut u8,
        blob_cap: usize,
        blob_len: *mut usize,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let k = try_status!(unsafe { handle(kms) });
            // SAFETY: forwarded contract.
            try_status!(unsafe {
                generate_data_key(
                    k, principal, key_id, dek_len, ctx, ctx_len, dek_out, blob_out, blob_cap,
                    blob_len,
                )
            });
            envol_status::ENVOL_OK
        })
    }

    /// Unwraps a data key through any [`Kms`]; see
    /// [`envol_local_kms_decrypt_data_key`].
    ///
    /// # Safety
    /// As for [`envol_local_kms_decrypt_data_key`], without `kms`.
    pub(crate) unsafe fn decrypt_data_key(
        service: &mut dyn Kms,
        principal: *const c_char,
        blob: *const u8,
        blob_len: usize,
        ctx: *const envol_kv,
        ctx_len: usize,
        dek_out: *mut u8,
        dek_cap: usize,
        dek_len: *mut usize,
    ) -> Result<(), envol_status> {
        // SAFETY: the caller's contract on each argument.
        let p = unsafe { in_principal(principal) }?;
        // SAFETY: as above.
        let blob = unsafe { in_slice(blob, blob_len) }?;
        // SAFETY: as above.
        let context = unsafe { in_context(ctx, ctx_len) }?;
        if dek_out.is_null() || dek_len.is_null() {
            return Err(envol_status::ENVOL_ERR_NULL_POINTER);
        }
        check_span(dek_out as usize, dek_cap)?;
        // Refuse a short buffer before the service unwraps anything.
        if let Ok(w) = WrappedKey::parse(blob)
            && w.secret_len().is_some_and(|n| n > dek_cap)
        {
            return Err(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL);
        }
        let dek = service.decrypt_data_key(p, blob, &context)?;
        let key = dek.as_bytes();
        if key.len() > dek_cap {
            return Err(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL);
        }
        // SAFETY: valid for `dek_cap` >= `key.len()` writes per the contract.
        unsafe {
            core::ptr::copy_nonoverlapping(key.as_ptr(), dek_out, key.len());
            dek_len.write(key.len());
        }
        Ok(())
    }

    /// Unwraps the data key in `blob` (made under the encryption context
    /// `ctx`) into `dek_out` (`dek_cap` bytes of room, 64 always suffice)
    /// and its length (32 or 64) into `*dek_len`. Needs `kms:Decrypt` on the
    /// blob's master key. A blob that is damaged, not envol's, or made under
    /// another context is `ENVOL_ERR_INVALID_CIPHERTEXT`.
    ///
    /// # Safety
    /// `kms` NULL or a live handle; `principal` NULL or NUL-terminated;
    /// `blob` NULL or valid for `blob_len` reads; `ctx` as for every context
    /// argument; `dek_out` NULL or valid for `dek_cap` writes; `dek_len` NULL
    /// or writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_decrypt_data_key(
        kms: *mut envol_local_kms,
        principal: *const c_char,
        blob: *const u8,
        blob_len: usize,
        ctx: *const envol_kv,
        ctx_len: usize,
        dek_out: *mut u8,
        dek_cap: usize,
        dek_len: *mut usize,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let k = try_status!(unsafe { handle(kms) });
            // SAFETY: forwarded contract.
            try_status!(unsafe {
                decrypt_data_key(
                    k, principal, blob, blob_len, ctx, ctx_len, dek_out, dek_cap, dek_len,
                )
            });
            envol_status::ENVOL_OK
        })
    }

    /// Re-wraps through any [`Kms`]; see [`envol_local_kms_re_encrypt`].
    ///
    /// # Safety
    /// As for [`envol_local_kms_re_encrypt`], without `kms`.
    pub(crate) unsafe fn re_encrypt(
        service: &mut dyn Kms,
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
    ) -> Result<(), envol_status> {
        // SAFETY: the caller's contract on each argument.
        let p = unsafe { in_principal(principal) }?;
        // SAFETY: as above.
        let blob = unsafe { in_slice(blob, blob_len) }?;
        // SAFETY: as above.
        let src = unsafe { in_context(src_ctx, src_len) }?;
        // SAFETY: as above.
        let dest = unsafe { in_key_id(dest_key_id) }?;
        // SAFETY: as above.
        let dst = unsafe { in_context(dst_ctx, dst_len) }?;
        if blob_out.is_null() || out_len.is_null() {
            return Err(envol_status::ENVOL_ERR_NULL_POINTER);
        }
        check_span(blob_out as usize, blob_cap)?;
        // Refuse a short buffer before the service re-wraps anything.
        if let Ok(w) = WrappedKey::parse(blob)
            && w.secret_len()
                .is_some_and(|n| blob_cap < envelope::blob_len(dest.len(), n))
        {
            return Err(envol_status::ENVOL_ERR_BUFFER_TOO_SMALL);
        }
        let mut out = [0u8; ENVOL_MAX_BLOB];
        let cap = blob_cap.min(ENVOL_MAX_BLOB);
        let n = service.re_encrypt(p, blob, &src, dest, &dst, &mut out[..cap])?;
        if n == 0 || n > cap {
            return Err(envol_status::ENVOL_ERR_INTERNAL);
        }
        // SAFETY: valid for `blob_cap` >= `n` writes per the contract.
        unsafe {
            core::ptr::copy_nonoverlapping(out.as_ptr(), blob_out, n);
            out_len.write(n);
        }
        Ok(())
    }

    /// Re-wraps the data key (or secret) in `blob`, made under `src_ctx`,
    /// under master key `dest_key_id` bound to `dst_ctx`, without the
    /// plaintext leaving the service; writes the new blob to `blob_out` and
    /// its length to `*out_len`. Needs `kms:ReEncryptFrom` on the source key
    /// and `kms:ReEncryptTo` on the destination. `blob_cap` too small for
    /// the new blob is `ENVOL_ERR_BUFFER_TOO_SMALL` (`ENVOL_MAX_BLOB` always
    /// suffices).
    ///
    /// # Safety
    /// `kms` NULL or a live handle; strings NULL or NUL-terminated; `blob`
    /// NULL or valid for `blob_len` reads; contexts as for every context
    /// argument; `blob_out` NULL or valid for `blob_cap` writes; `out_len`
    /// NULL or writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_re_encrypt(
        kms: *mut envol_local_kms,
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
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            let k = try_status!(unsafe { handle(kms) });
            // SAFETY: forwarded contract.
            try_status!(unsafe {
                re_encrypt(
                    k,
                    principal,
                    blob,
                    blob_len,
                    src_ctx,
                    src_len,
                    dest_key_id,
                    dst_ctx,
                    dst_len,
                    blob_out,
                    blob_cap,
                    out_len,
                )
            });
            envol_status::ENVOL_OK
        })
    }

    /// A C handle with a key service behind it. Its callback table is made
    /// of the generic trampolines below, which check the arguments exactly
    /// as the handle's own entry points do.
    pub(crate) trait ServiceHandle {
        /// The service behind `user`.
        ///
        /// # Safety
        /// `user` NULL or a live handle of this type, used by this call alone.
        unsafe fn service<'a>(user: *mut c_void) -> Result<&'a mut dyn Kms, envol_status>;
    }

    impl ServiceHandle for envol_local_kms {
        unsafe fn service<'a>(user: *mut c_void) -> Result<&'a mut dyn Kms, envol_status> {
            // SAFETY: forwarded contract.
            let k: &'a mut LocalKms = unsafe { handle(user.cast()) }?;
            Ok(k)
        }
    }

    /// The callback table of handle `user` of type `H`.
    pub(crate) fn callback_table<H: ServiceHandle>(user: *mut c_void) -> envol_kms_callbacks {
        envol_kms_callbacks {
            user,
            generate_data_key: Some(cb_generate_data_key::<H>),
            decrypt_data_key: Some(cb_decrypt_data_key::<H>),
            re_encrypt: Some(cb_re_encrypt::<H>),
        }
    }

    /// `generate_data_key` of the table.
    ///
    /// # Safety
    /// `user` is a live `H`; the rest as for
    /// [`envol_local_kms_generate_data_key`].
    unsafe extern "C" fn cb_generate_data_key<H: ServiceHandle>(
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
    ) -> envol_status_arg {
        envol_status_arg::from(guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the table's contract.
            let k = try_status!(unsafe { H::service(user) });
            // SAFETY: forwarded contract.
            try_status!(unsafe {
                generate_data_key(
                    k, principal, key_id, dek_len, ctx, ctx_len, dek_out, blob_out, blob_cap,
                    blob_len,
                )
            });
            envol_status::ENVOL_OK
        }))
    }

    /// `decrypt_data_key` of the table.
    ///
    /// # Safety
    /// `user` is a live `H`; the rest as for
    /// [`envol_local_kms_decrypt_data_key`].
    unsafe extern "C" fn cb_decrypt_data_key<H: ServiceHandle>(
        user: *mut c_void,
        principal: *const c_char,
        blob: *const u8,
        blob_len: usize,
        ctx: *const envol_kv,
        ctx_len: usize,
        dek_out: *mut u8,
        dek_cap: usize,
        dek_len: *mut usize,
    ) -> envol_status_arg {
        envol_status_arg::from(guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the table's contract.
            let k = try_status!(unsafe { H::service(user) });
            // SAFETY: forwarded contract.
            try_status!(unsafe {
                decrypt_data_key(
                    k, principal, blob, blob_len, ctx, ctx_len, dek_out, dek_cap, dek_len,
                )
            });
            envol_status::ENVOL_OK
        }))
    }

    /// `re_encrypt` of the table.
    ///
    /// # Safety
    /// `user` is a live `H`; the rest as for [`envol_local_kms_re_encrypt`].
    unsafe extern "C" fn cb_re_encrypt<H: ServiceHandle>(
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
    ) -> envol_status_arg {
        envol_status_arg::from(guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the table's contract.
            let k = try_status!(unsafe { H::service(user) });
            // SAFETY: forwarded contract.
            try_status!(unsafe {
                re_encrypt(
                    k,
                    principal,
                    blob,
                    blob_len,
                    src_ctx,
                    src_len,
                    dest_key_id,
                    dst_ctx,
                    dst_len,
                    blob_out,
                    blob_cap,
                    out_len,
                )
            });
            envol_status::ENVOL_OK
        }))
    }

    /// Fills `*out` with a callback table whose three functions call this
    /// handle (`user` is the handle), so code written against
    /// `envol_kms_callbacks` (e.g. `envol_xts_init_from_blob`) runs on the
    /// reference service unchanged. The table is valid while the handle
    /// lives, and shares its one-thread-at-a-time rule.
    ///
    /// # Safety
    /// `kms` NULL or a live handle; `out` NULL or writable.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn envol_local_kms_callbacks(
        kms: *mut envol_local_kms,
        out: *mut envol_kms_callbacks,
    ) -> envol_status {
        guard!(envol_status::ENVOL_ERR_INTERNAL, {
            // SAFETY: the caller's contract.
            try_status!(unsafe { handle(kms) });
            if out.is_null() {
                return envol_status::ENVOL_ERR_NULL_POINTER;
            }
            let table = callback_table::<envol_local_kms>(kms.cast());
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out.write_unaligned(table) };
            envol_status::ENVOL_OK
        })
    }
}
