//! Envelope primitives in the C ABI, for firmware that holds its own master
//! key (a fused or sealed key-encryption key) and has no key service: wrap
//! and unwrap data keys in the same self-describing, context-bound blob
//! format the key services use.

use envol::envelope::{self, MasterKey, WrappedKey};

use crate::boundary::guard_secret;
use crate::boundary::{envol_status, in_slice, try_status};
use crate::kms::{envol_kv, in_context, in_key_id};

fn map(e: envelope::Error) -> envol_status {
    match e {
        envelope::Error::BufferTooSmall => envol_status::ENVOL_ERR_BUFFER_TOO_SMALL,
        envelope::Error::BadContext => envol_status::ENVOL_ERR_CONTEXT,
        envelope::Error::BadKeyId => envol_status::ENVOL_ERR_KEY_ID,
        envelope::Error::BadLength => envol_status::ENVOL_ERR_LENGTH,
        envelope::Error::Rng => envol_status::ENVOL_ERR_KMS_UNAVAILABLE,
        _ => envol_status::ENVOL_ERR_INVALID_CIPHERTEXT,
    }
}

/// Reads a 32-byte master key.
///
/// # Safety
/// `p` is NULL or valid for 32 reads.
unsafe fn master(p: *const u8) -> Result<MasterKey, envol_status> {
    // SAFETY: forwarded contract.
    let s = unsafe { in_slice(p, 32) }?;
    let mut k = [0u8; 32];
    k.copy_from_slice(s);
    let m = MasterKey::from_bytes(k);
    zeroize::Zeroize::zeroize(&mut k);
    Ok(m)
}

/// Wraps `secret` (1..=4096 bytes) under a raw 256-bit master key, bound to
/// the encryption context, with the caller's 12-byte `nonce`, which must
/// never repeat under that master key (use a TRNG or a persistent
/// counter). Writes the blob and its length; `blob_cap >= ENVOL_MAX_BLOB`
/// always suffices.
///
/// # Safety
/// `master_key` and `nonce` NULL or valid for 32 and 12 reads; `key_id` NULL
/// or NUL-terminated; `ctx` as for the key-service calls; `secret` NULL or
/// valid for `secret_len` reads; `blob_out` NULL or valid for `blob_cap`
/// writes; `blob_len` NULL or writable.
///
/// cbindgen:ptrs-as-arrays=[[master_key;32], [nonce;12]]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn envol_envelope_seal(
    master_key: *const u8,
    key_id: *const core::ffi::c_char,
    backing_version: u32,
    ctx: *const envol_kv,
    ctx_len: usize,
    secret: *const u8,
    secret_len: usize,
    nonce: *const u8,
    blob_out: *mut u8,
    blob_cap: usize,
    blob_len: *mut usize,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        if blob_out.is_null() || blob_len.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: the caller's contracts, argument by argument.
        let mk = try_status!(unsafe { master(master_key) });
        // SAFETY: as above.
        let id = try_status!(unsafe { in_key_id(key_id) });
        // SAFETY: as above.
        let context = try_status!(unsafe { in_context(ctx, ctx_len) });
        // SAFETY: as above.
        let secret = try_status!(unsafe { in_slice(secret, secret_len) });
        // SAFETY: as above.
        let n = try_status!(unsafe { in_slice(nonce, 12) });
        let mut nonce12 = [0u8; 12];
        nonce12.copy_from_slice(n);
        let mut blob = [0u8; envelope::MAX_BLOB];
        let len = try_status!(
            mk.seal_with_nonce(id, backing_version, &context, secret, &nonce12, &mut blob)
                .map_err(map)
        );
        if len > blob_cap {
            return envol_status::ENVOL_ERR_BUFFER_TOO_SMALL;
        }
        // SAFETY: `blob_out` valid for `blob_cap >= len` writes; `blob_len` writable.
        unsafe {
            core::ptr::copy_nonoverlapping(blob.as_ptr(), blob_out, len);
            blob_len.write(len);
        }
        envol_status::ENVOL_OK
    })
}

/// Unwraps a blob made by `envol_envelope_seal` (or a key service's wrap
/// under the same raw key) with the same encryption context. A wrong key, an
/// edited blob or a different context are all
/// `ENVOL_ERR_INVALID_CIPHERTEXT`. The secret is written only on success.
///
/// # Safety
/// `master_key` NULL or valid for 32 reads; `blob` NULL or valid for
/// `blob_len` reads; `ctx` as for the key-service calls; `out` NULL or valid
/// for `out_cap` writes; `out_len` NULL or writable.
///
/// cbindgen:ptrs-as-arrays=[[master_key;32]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_envelope_open(
    master_key: *const u8,
    blob: *const u8,
    blob_len: usize,
    ctx: *const envol_kv,
    ctx_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        if out.is_null() || out_len.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: the caller's contracts, argument by argument.
        let mk = try_status!(unsafe { master(master_key) });
        // SAFETY: as above.
        let blob = try_status!(unsafe { in_slice(blob, blob_len) });
        // SAFETY: as above.
        let context = try_status!(unsafe { in_context(ctx, ctx_len) });
        let w = try_status!(WrappedKey::parse(blob).map_err(map));
        if w.secret_len().is_some_and(|n| n > out_cap) {
            return envol_status::ENVOL_ERR_BUFFER_TOO_SMALL;
        }
        let mut secret = [0u8; envelope::MAX_SECRET];
        let n = try_status!(w.open(&mk, &context, &mut secret).map_err(map));
        // SAFETY: `out` valid for `out_cap >= n` writes; `out_len` writable.
        unsafe {
            core::ptr::copy_nonoverlapping(secret.as_ptr(), out, n);
            out_len.write(n);
        }
        zeroize::Zeroize::zeroize(&mut secret[..n]);
        envol_status::ENVOL_OK
    })
}
