//! What every C key-service handle shares (hosted builds): the data-key
//! calls over any [`Kms`], checked exactly as the C ABI promises, and the
//! generic trampolines that make a handle's `envol_kms_callbacks` table.
#![allow(clippy::too_many_arguments)]

use core::ffi::{c_char, c_int, c_void};

use envol::envelope::{self, WrappedKey};
use envol::kms::Kms;
use envol::xts::KeySize;

use crate::boundary::guard_secret;
use crate::boundary::{check_span, envol_status, envol_status_arg, guard, in_slice, try_status};
use crate::kms::{
    ENVOL_MAX_BLOB, envol_kms_callbacks, envol_kv, in_context, in_key_id, in_principal,
};

/// Generates a data key through any [`Kms`]; see
/// [`envol_local_kms_generate_data_key`](crate::envol_local_kms_generate_data_key).
///
/// # Safety
/// As for [`envol_local_kms_generate_data_key`](crate::envol_local_kms_generate_data_key), without `kms`.
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
    let size = KeySize::from_key_len(dek_len).map_err(|_| envol_status::ENVOL_ERR_KEY_LENGTH)?;
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

/// Unwraps a data key through any [`Kms`]; see
/// [`envol_local_kms_decrypt_data_key`](crate::envol_local_kms_decrypt_data_key).
///
/// # Safety
/// As for [`envol_local_kms_decrypt_data_key`](crate::envol_local_kms_decrypt_data_key), without `kms`.
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

/// Re-wraps through any [`Kms`]; see [`envol_local_kms_re_encrypt`](crate::envol_local_kms_re_encrypt).
///
/// # Safety
/// As for [`envol_local_kms_re_encrypt`](crate::envol_local_kms_re_encrypt), without `kms`.
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

/// A C handle with a key service behind it. Its callback table is made
/// of the generic trampolines below, which check the arguments exactly
/// as the handle's own entry points do.
pub(crate) trait ServiceHandle {
    /// Runs `f` on the service behind `user`, holding the handle's lock for
    /// the call (handles are safe to share between threads).
    ///
    /// # Safety
    /// `user` NULL or a live handle of this type.
    unsafe fn with_service<R>(
        user: *mut c_void,
        f: impl FnOnce(&mut dyn Kms) -> Result<R, envol_status>,
    ) -> Result<R, envol_status>;
}

/// The callback table of handle `user` of type `H`.
pub(crate) fn callback_table<H: ServiceHandle>(user: *mut c_void) -> envol_kms_callbacks {
    envol_kms_callbacks {
        user,
        generate_data_key: Some(cb_generate_data_key::<H>),
        decrypt_data_key: Some(cb_decrypt_data_key::<H>),
        re_encrypt: Some(cb_re_encrypt::<H>),
        retire_context: Some(cb_retire_context::<H>),
    }
}

/// `generate_data_key` of the table.
///
/// # Safety
/// `user` is a live `H`; the rest as for
/// [`envol_local_kms_generate_data_key`](crate::envol_local_kms_generate_data_key).
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
    envol_status_arg::from(guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the table's contract; the arguments are forwarded.
        try_status!(unsafe {
            H::with_service(user, |k| {
                generate_data_key(
                    k, principal, key_id, dek_len, ctx, ctx_len, dek_out, blob_out, blob_cap,
                    blob_len,
                )
            })
        });
        envol_status::ENVOL_OK
    }))
}

/// `decrypt_data_key` of the table.
///
/// # Safety
/// `user` is a live `H`; the rest as for
/// [`envol_local_kms_decrypt_data_key`](crate::envol_local_kms_decrypt_data_key).
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
    envol_status_arg::from(guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the table's contract; the arguments are forwarded.
        try_status!(unsafe {
            H::with_service(user, |k| {
                decrypt_data_key(
                    k, principal, blob, blob_len, ctx, ctx_len, dek_out, dek_cap, dek_len,
                )
            })
        });
        envol_status::ENVOL_OK
    }))
}

/// `re_encrypt` of the table.
///
/// # Safety
/// `user` is a live `H`; the rest as for
/// [`envol_local_kms_re_encrypt`](crate::envol_local_kms_re_encrypt).
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
    envol_status_arg::from(guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the table's contract; the arguments are forwarded.
        try_status!(unsafe {
            H::with_service(user, |k| {
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
            })
        });
        envol_status::ENVOL_OK
    }))
}

/// `retire_context` of the table.
///
/// # Safety
/// `user` is a live `H`; the rest as for `envol_kms_callbacks`.
unsafe extern "C" fn cb_retire_context<H: ServiceHandle>(
    user: *mut c_void,
    principal: *const c_char,
    blob: *const u8,
    blob_len: usize,
    ctx: *const envol_kv,
    ctx_len: usize,
    kept: *mut c_int,
) -> envol_status_arg {
    envol_status_arg::from(guard!(envol_status::ENVOL_ERR_INTERNAL, {
        if kept.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: the table's contract on each argument.
        let p = try_status!(unsafe { in_principal(principal) });
        // SAFETY: as above.
        let blob = try_status!(unsafe { in_slice(blob, blob_len) });
        // SAFETY: as above.
        let context = try_status!(unsafe { in_context(ctx, ctx_len) });
        // SAFETY: the table's contract.
        let k = try_status!(unsafe {
            H::with_service(user, |k| Ok(k.retire_context(p, blob, &context)?))
        });
        // SAFETY: non-NULL and writable per the contract.
        unsafe { kept.write(c_int::from(k)) };
        envol_status::ENVOL_OK
    }))
}
