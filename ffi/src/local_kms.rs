//! The reference key service as a heap handle (hosted builds only: it needs
//! the OS's randomness and clock, and allocates).
#![allow(clippy::too_many_arguments)]

use core::ffi::{c_char, c_int, c_void};
use core::mem::align_of;
use std::boxed::Box;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

use envol::kms::policy::{Action, MAX_POLICY_BYTES, Policy};
use envol::kms::{
    GrantConstraint, KeyState, Kms, KmsError, LocalKms, OsEntropy, SealError, SystemClock,
};
use zeroize::Zeroize;

use crate::boundary::guard_secret;
use crate::boundary::{StrError, check_span, envol_status, guard, in_slice, in_str, try_status};
use crate::kms::{
    ENVOL_GRANT_ID_SIZE, ENVOL_MAX_GRANT_OPERATIONS, envol_grant_constraint, envol_key_state,
    envol_kms_callbacks, envol_kv, in_context, in_key_id, in_principal,
};
use crate::service::{
    ServiceHandle, callback_table, decrypt_data_key, generate_data_key, re_encrypt,
};

/// The reference key service (`LocalKms`) as an opaque handle: master
/// keys made inside with the OS's randomness and never handed out, a
/// service policy for creating keys, key policies, grants, rotation,
/// deletion windows on the system clock, tombstones of retired volumes, and
/// a keyed, hash-chained audit log of every call, allowed or refused.
///
/// Create with `envol_local_kms_new` or `envol_local_kms_unseal`, free
/// with `envol_local_kms_free`. Safe to share between threads: each call
/// holds the handle's lock for its duration.
pub struct envol_local_kms {
    kms: Mutex<LocalKms>,
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

/// The service behind a handle, locked for the caller.
///
/// # Safety
/// `kms` NULL or a live handle.
pub(crate) unsafe fn handle<'a>(
    kms: *const envol_local_kms,
) -> Result<MutexGuard<'a, LocalKms>, envol_status> {
    if kms.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    if !(kms as usize).is_multiple_of(align_of::<envol_local_kms>()) {
        return Err(envol_status::ENVOL_ERR_ALIGNMENT);
    }
    // SAFETY: a live handle per the contract. A panic inside a call (caught
    // at the boundary) leaves the service as its last completed change.
    Ok(unsafe { &(*kms).kms }
        .lock()
        .unwrap_or_else(PoisonError::into_inner))
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
        Ok(s) => Policy::parse(s)
            .ok()
            .filter(Policy::is_storable)
            .ok_or(envol_status::ENVOL_ERR_POLICY),
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
    let mut k = unsafe { handle(kms) }?;
    // SAFETY: forwarded contract.
    let p = unsafe { in_principal(principal) }?;
    // SAFETY: forwarded contract.
    let id = unsafe { in_key_id(key_id) }?;
    f(&mut k, p, id).map_err(envol_status::from)
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
        let h = Box::into_raw(Box::new(envol_local_kms {
            kms: Mutex::new(service()),
        }));
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
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let mut k = try_status!(unsafe { handle(kms) });
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
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
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
        let h = Box::into_raw(Box::new(envol_local_kms {
            kms: Mutex::new(kms),
        }));
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(h) };
        envol_status::ENVOL_OK
    })
}

/// Sets the service policy (policy JSON in the key-policy language), which
/// says who may create keys (`kms:CreateKey`), list them (`kms:ListKeys`)
/// and replace it (`kms:PutServicePolicy`). A new service has none, and
/// then nobody may create keys: the first is set by whoever holds the
/// handle (the operator, at setup); after that, `principal` needs
/// `kms:PutServicePolicy` under the current one (else
/// `ENVOL_ERR_ACCESS_DENIED`). Audited as `kms:PutServicePolicy`.
///
/// # Safety
/// `kms` NULL or a live handle; each string NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_set_service_policy(
    kms: *mut envol_local_kms,
    principal: *const c_char,
    policy_json: *const c_char,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let mut k = try_status!(unsafe { handle(kms) });
        // SAFETY: as above.
        let p = try_status!(unsafe { in_principal(principal) });
        // SAFETY: as above.
        let policy = try_status!(unsafe { in_policy(policy_json) });
        try_status!(k.set_service_policy(p, policy));
        envol_status::ENVOL_OK
    })
}

/// Creates master key `key_id` with a fresh backing version and the key
/// policy `policy_json` (AWS KMS policy JSON with `"Envol"` principals).
/// Needs `kms:CreateKey` under the service policy (see
/// `envol_local_kms_set_service_policy`; else `ENVOL_ERR_ACCESS_DENIED`);
/// audited as `kms:CreateKey` by `creator`. An invalid or already used key
/// id is `ENVOL_ERR_KEY_ID`, an invalid policy `ENVOL_ERR_POLICY`, a
/// principal that is empty or starts with `(` `ENVOL_ERR_INVALID_ARGUMENT`,
/// the service's key quota `ENVOL_ERR_LIMIT_EXCEEDED`.
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
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let mut k = try_status!(unsafe { handle(kms) });
        // SAFETY: as above.
        let creator = try_status!(unsafe { in_principal(creator) });
        // SAFETY: as above.
        let id = try_status!(unsafe { in_key_id(key_id) });
        // SAFETY: as above.
        let policy = try_status!(unsafe { in_policy(policy_json) });
        match k.create_key(creator, id, policy) {
            Ok(()) => envol_status::ENVOL_OK,
            Err(KmsError::InvalidArgument) if envol::kms::check_principal(creator).is_err() => {
                envol_status::ENVOL_ERR_INVALID_ARGUMENT
            }
            // The policy was checked above: what is left is the id.
            Err(KmsError::InvalidArgument) => envol_status::ENVOL_ERR_KEY_ID,
            Err(e) => e.into(),
        }
    })
}

/// Forgets that `key_id` protects the volume whose encryption context is
/// `ctx` (after the volume was destroyed or moved to another key), so that
/// deleting the key no longer needs `force` for it. Needs
/// `kms:ForgetVolume`.
///
/// # Safety
/// `kms` NULL or a live handle; strings NULL or NUL-terminated; `ctx` as
/// for every context argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_forget_volume(
    kms: *mut envol_local_kms,
    principal: *const c_char,
    key_id: *const c_char,
    ctx: *const envol_kv,
    ctx_len: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let context = try_status!(unsafe { in_context(ctx, ctx_len) });
        // SAFETY: forwarded contract.
        try_status!(unsafe {
            manage(kms, principal, key_id, |k, p, id| {
                k.forget_volume(p, id, &context)
            })
        });
        envol_status::ENVOL_OK
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
        let mut k = try_status!(unsafe { handle(kms) });
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
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
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

mod grants;

pub use grants::*;

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
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let mut k = try_status!(unsafe { handle(kms) });
        // SAFETY: forwarded contract.
        try_status!(unsafe {
            generate_data_key(
                &mut *k, principal, key_id, dek_len, ctx, ctx_len, dek_out, blob_out, blob_cap,
                blob_len,
            )
        });
        envol_status::ENVOL_OK
    })
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
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let mut k = try_status!(unsafe { handle(kms) });
        // SAFETY: forwarded contract.
        try_status!(unsafe {
            decrypt_data_key(
                &mut *k, principal, blob, blob_len, ctx, ctx_len, dek_out, dek_cap, dek_len,
            )
        });
        envol_status::ENVOL_OK
    })
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
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let mut k = try_status!(unsafe { handle(kms) });
        // SAFETY: forwarded contract.
        try_status!(unsafe {
            re_encrypt(
                &mut *k,
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

impl ServiceHandle for envol_local_kms {
    unsafe fn with_service<R>(
        user: *mut c_void,
        f: impl FnOnce(&mut dyn Kms) -> Result<R, envol_status>,
    ) -> Result<R, envol_status> {
        // SAFETY: forwarded contract.
        let mut k = unsafe { handle(user.cast()) }?;
        f(&mut *k)
    }
}

/// Fills `*out` with a callback table whose functions call this handle
/// (`user` is the handle), so code written against `envol_kms_callbacks`
/// (e.g. `envol_xts_init_from_blob`, volumes) runs on the reference
/// service unchanged. The table is valid while the handle lives and, like
/// the handle, may be used from several threads at once.
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
        drop(try_status!(unsafe { handle(kms) }));
        if out.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        let table = callback_table::<envol_local_kms>(kms.cast());
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write_unaligned(table) };
        envol_status::ENVOL_OK
    })
}
