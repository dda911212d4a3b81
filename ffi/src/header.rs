//! The low-level header calls, for hypervisors that do their own
//! (asynchronous) I/O: check and parse the two header slots, compute the
//! encryption context of a volume's parameters, unwrap the verified copy's
//! data key into an `envol_xts`, and build a header copy from parts.
#![allow(clippy::too_many_arguments)]

use core::ffi::{c_char, c_int};
use core::mem::size_of;

use envol::header::{self, Header, SLOT_SIZE};
use envol::volume::unlock_slots;
use envol::xts::KeySize;

use crate::boundary::{
    check_span, envol_status, guard, guard_secret, in_slice, ranges_overlap, try_status,
};
use crate::kms::{CallbackKms, envol_kms_callbacks, envol_kv, in_principal};
use crate::volume::{envol_volume_params, in_kms, in_params, in_volume_id, params_to_c};
use crate::xts::{check_ctx, envol_xts, store_engine};

/// Number of pairs in a volume's encryption context
/// (`envol_header_context`).
pub const ENVOL_HEADER_CONTEXT_PAIRS: usize = 5;
/// Size of a string buffer that always holds a volume's encryption context
/// (`envol_header_context`).
pub const ENVOL_HEADER_CONTEXT_STRINGS: usize = 256;

/// One header slot from C.
///
/// # Safety
/// `ptr` NULL or valid for `ENVOL_HEADER_SLOT_SIZE` reads during `'a`.
unsafe fn in_slot<'a>(ptr: *const u8) -> Result<&'a [u8], envol_status> {
    // SAFETY: forwarded contract.
    unsafe { in_slice(ptr, SLOT_SIZE) }
}

/// Checks one header copy on its own (a slot of `ENVOL_HEADER_SLOT_SIZE`
/// bytes): `ENVOL_OK` if it parses, else why not —
/// `ENVOL_ERR_HEADER_BAD_MAGIC`, `ENVOL_ERR_HEADER_CORRUPT` (checksum: torn
/// or damaged), `ENVOL_ERR_HEADER_VERSION`, `ENVOL_ERR_HEADER_FLAGS` or
/// `ENVOL_ERR_HEADER_MALFORMED`. (The MAC needs the data key; see
/// `envol_header_unwrap`.)
///
/// # Safety
/// `slot` NULL or valid for `ENVOL_HEADER_SLOT_SIZE` reads.
///
/// cbindgen:ptrs-as-arrays=[[slot;ENVOL_HEADER_SLOT_SIZE]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_header_check(slot: *const u8) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let s = try_status!(unsafe { in_slot(slot) });
        try_status!(Header::parse(s));
        envol_status::ENVOL_OK
    })
}

/// Parses the two header slots of a volume (the first
/// `2 * ENVOL_HEADER_SLOT_SIZE` bytes of its device) and picks the newest
/// good copy, as `envol_volume_open` does, without writing anything:
/// its parameters go to `*params_out`, its sequence number to
/// `*sequence_out`, the wrapped data key (a complete blob, as a key
/// service's decrypt takes it) to `blob_out` (`blob_cap` bytes of room;
/// `ENVOL_MAX_BLOB` always suffices, else `ENVOL_ERR_BUFFER_TOO_SMALL`) and
/// its length to `*blob_len`. `*repair_needed` is the slot (0 = A, 1 = B)
/// whose copy is damaged, stale or different, or -1. That copy should be
/// rewritten with the winner's bytes only after `envol_header_unwrap_expect`
/// verified the winner (nothing here is authenticated yet).
///
/// Both copies unreadable is `ENVOL_ERR_HEADER_BOTH_CORRUPT`, or the error
/// both share (`ENVOL_ERR_HEADER_BAD_MAGIC` for a device holding no volume,
/// `ENVOL_ERR_HEADER_VERSION`, ...). Every output is required. A retired
/// volume parses; `envol_header_unwrap` refuses it.
///
/// # Safety
/// `slot_a`, `slot_b` NULL or valid for `ENVOL_HEADER_SLOT_SIZE` reads;
/// `blob_out` NULL or valid for `blob_cap` writes; the other outputs NULL
/// or writable; no output overlaps a slot (for `blob_out` this is checked:
/// `ENVOL_ERR_OVERLAP`).
///
/// cbindgen:ptrs-as-arrays=[[slot_a;ENVOL_HEADER_SLOT_SIZE], [slot_b;ENVOL_HEADER_SLOT_SIZE]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_header_parse(
    slot_a: *const u8,
    slot_b: *const u8,
    params_out: *mut envol_volume_params,
    sequence_out: *mut u64,
    blob_out: *mut u8,
    blob_cap: usize,
    blob_len: *mut usize,
    repair_needed: *mut c_int,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract on each argument.
        let a = try_status!(unsafe { in_slot(slot_a) });
        // SAFETY: as above.
        let b = try_status!(unsafe { in_slot(slot_b) });
        if params_out.is_null()
            || sequence_out.is_null()
            || blob_out.is_null()
            || blob_len.is_null()
            || repair_needed.is_null()
        {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        try_status!(check_span(blob_out as usize, blob_cap));
        let p = try_status!(header::pick(a, b));
        let h = p.header;
        if h.blob.len() > blob_cap {
            return envol_status::ENVOL_ERR_BUFFER_TOO_SMALL;
        }
        if overlaps(blob_out, blob_cap, a) || overlaps(blob_out, blob_cap, b) {
            return envol_status::ENVOL_ERR_OVERLAP;
        }
        let repair: c_int = if p.other_needs_repair {
            if p.slot == 0 { 1 } else { 0 }
        } else {
            -1
        };
        // SAFETY: non-NULL and writable per the contract; `blob_out` has
        // `blob_cap` >= `h.blob.len()` bytes of room and does not overlap
        // the slots `h.blob` points into.
        unsafe {
            params_out.write_unaligned(params_to_c(&h.params));
            sequence_out.write_unaligned(h.sequence);
            core::ptr::copy_nonoverlapping(h.blob.as_ptr(), blob_out, h.blob.len());
            blob_len.write_unaligned(h.blob.len());
            repair_needed.write_unaligned(repair);
        }
        envol_status::ENVOL_OK
    })
}

/// Whether `[p, p+len)` intersects `s`.
fn overlaps(p: *const u8, len: usize, s: &[u8]) -> bool {
    ranges_overlap(p as usize, len, s.as_ptr() as usize, s.len())
}

/// Writes the encryption context a volume's data key is wrapped under,
/// for volume parameters `*params`: `ENVOL_HEADER_CONTEXT_PAIRS` (5) pairs
/// to `pairs_out`, whose key and value strings are NUL-terminated copies in
/// `strings_out` (`strings_cap` bytes; `ENVOL_HEADER_CONTEXT_STRINGS`
/// always suffices, else `ENVOL_ERR_BUFFER_TOO_SMALL`), and their number to
/// `*n_pairs`. The pairs, sorted by key: `envol:cipher` (e.g.
/// `aes-xts-plain64-512`), `envol:data-offset`, `envol:sector-size`,
/// `envol:volume-size` (decimal), and `volume` = `vol-<id as 32 hex
/// digits>`, which key policies match on. With it (and the blob from
/// `envol_header_parse`) a C caller can call its own key service directly.
/// The pointers in `pairs_out` stay valid while `strings_out` does.
/// `pairs_out` overlapping `strings_out` is `ENVOL_ERR_OVERLAP`.
///
/// # Safety
/// `params` NULL or readable; `pairs_out` NULL or valid for
/// `ENVOL_HEADER_CONTEXT_PAIRS` writes; `strings_out` NULL or valid for
/// `strings_cap` writes; `n_pairs` NULL or writable.
///
/// cbindgen:ptrs-as-arrays=[[pairs_out;ENVOL_HEADER_CONTEXT_PAIRS]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_header_context(
    params: *const envol_volume_params,
    pairs_out: *mut envol_kv,
    strings_out: *mut c_char,
    strings_cap: usize,
    n_pairs: *mut usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let params = try_status!(unsafe { in_params(params) });
        if pairs_out.is_null() || strings_out.is_null() || n_pairs.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        try_status!(check_span(strings_out as usize, strings_cap));
        let pairs_len = ENVOL_HEADER_CONTEXT_PAIRS * size_of::<envol_kv>();
        if ranges_overlap(
            pairs_out as usize,
            pairs_len,
            strings_out as usize,
            strings_cap,
        ) {
            return envol_status::ENVOL_ERR_OVERLAP;
        }
        let strings = Header::shell(params).context_strings();
        let context = strings.context();
        if context.len() != ENVOL_HEADER_CONTEXT_PAIRS {
            return envol_status::ENVOL_ERR_INTERNAL;
        }
        let need: usize = context.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        if need > strings_cap {
            return envol_status::ENVOL_ERR_BUFFER_TOO_SMALL;
        }
        let base = strings_out.cast::<u8>();
        let mut pos = 0;
        for (i, (k, v)) in context.iter().enumerate() {
            let mut kv = [core::ptr::null::<c_char>(); 2];
            for (slot, s) in kv.iter_mut().zip([k, v]) {
                // SAFETY: `pos + s.len() + 1 <= need <= strings_cap`, inside
                // the caller's buffer, which is writable per the contract.
                unsafe {
                    let dst = base.add(pos);
                    core::ptr::copy_nonoverlapping(s.as_ptr(), dst, s.len());
                    dst.add(s.len()).write(0);
                    *slot = dst.cast::<c_char>().cast_const();
                }
                pos += s.len() + 1;
            }
            // SAFETY: `i` < 5 = the room `pairs_out` has per the contract.
            unsafe {
                pairs_out.add(i).write_unaligned(envol_kv {
                    key: kv[0],
                    value: kv[1],
                });
            }
        }
        // SAFETY: non-NULL and writable per the contract.
        unsafe { n_pairs.write_unaligned(ENVOL_HEADER_CONTEXT_PAIRS) };
        envol_status::ENVOL_OK
    })
}

/// The low level's attach: picks the newest readable copy of the two
/// header slots, unwraps its data key as `principal` through the key
/// service (`kms->decrypt_data_key`) with the copy's encryption context,
/// verifies its MAC — falling back to the other copy if the newest proves
/// not to be this volume's (its key does not unwrap for its context, or
/// its MAC fails) — and initialises `ctx` with the key (best backend). The
/// plaintext key never reaches the caller, and every buffer that held it is
/// wiped. On any error `ctx` is left as it was.
///
/// Then, for a request on data sectors `n..n+k` of the volume (learn
/// `data_offset` and `sector_size` from `envol_header_parse`): the bytes
/// are at device offset `data_offset + n * sector_size`, and are
/// encrypted/decrypted with `envol_xts_encrypt_sectors` /
/// `envol_xts_decrypt_sectors(ctx, n, sector_size, in, out, k *
/// sector_size)` — `first_sector` counts from the start of the data area,
/// not of the device. `envol_xts_wipe(ctx)` is the detach.
///
/// Errors as for `envol_header_parse` and `envol_volume_attach`
/// (`ENVOL_ERR_VOLUME_RETIRED`, the key service's status,
/// `ENVOL_ERR_HEADER_TAMPERED`, `ENVOL_ERR_KEY_MISMATCH`); NULL
/// `decrypt_data_key` is `ENVOL_ERR_NULL_POINTER`.
///
/// # Safety
/// `ctx` NULL or a writable `envol_xts`; `kms` NULL or a readable
/// `envol_kms_callbacks` whose callbacks keep its contract; `principal`
/// NULL or NUL-terminated; `slot_a`, `slot_b` NULL or valid for
/// `ENVOL_HEADER_SLOT_SIZE` reads.
///
/// cbindgen:ptrs-as-arrays=[[slot_a;ENVOL_HEADER_SLOT_SIZE], [slot_b;ENVOL_HEADER_SLOT_SIZE]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_header_unwrap(
    ctx: *mut envol_xts,
    kms: *const envol_kms_callbacks,
    principal: *const c_char,
    slot_a: *const u8,
    slot_b: *const u8,
) -> envol_status {
    // SAFETY: forwarded contract.
    unsafe {
        envol_header_unwrap_expect(
            ctx,
            kms,
            principal,
            slot_a,
            slot_b,
            core::ptr::null(),
            core::ptr::null_mut(),
        )
    }
}

/// `envol_header_unwrap` for a caller that knows which volume it expects:
/// copies naming another volume id than `volume_id` (16 bytes; NULL for
/// any) are never used (`ENVOL_ERR_WRONG_VOLUME` if that leaves none), and
/// `*verified_slot` (may be NULL) gets the slot whose copy verified (0 = A,
/// 1 = B). Rewrite the other slot with the verified copy's bytes, if they
/// differ, only after this succeeded: never repair from an unverified copy.
///
/// # Safety
/// As for [`envol_header_unwrap`]; `volume_id` NULL or valid for 16 reads;
/// `verified_slot` NULL or writable.
///
/// cbindgen:ptrs-as-arrays=[[slot_a;ENVOL_HEADER_SLOT_SIZE], [slot_b;ENVOL_HEADER_SLOT_SIZE], [volume_id;16]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_header_unwrap_expect(
    ctx: *mut envol_xts,
    kms: *const envol_kms_callbacks,
    principal: *const c_char,
    slot_a: *const u8,
    slot_b: *const u8,
    volume_id: *const u8,
    verified_slot: *mut c_int,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        try_status!(check_ctx(ctx));
        // SAFETY: the caller's contract on each argument.
        let table = try_status!(unsafe { in_kms(kms) });
        if table.decrypt_data_key.is_none() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: as above.
        let principal = try_status!(unsafe { in_principal(principal) });
        // SAFETY: as above.
        let a = try_status!(unsafe { in_slot(slot_a) });
        // SAFETY: as above.
        let b = try_status!(unsafe { in_slot(slot_b) });
        // SAFETY: as above.
        let expected = unsafe { in_volume_id(volume_id) };
        // SAFETY: the caller's contract on the table.
        let mut service = unsafe { CallbackKms::new(table) };
        let (xts, slot) = try_status!(unlock_slots(
            a,
            b,
            expected.as_ref(),
            &mut service,
            principal
        ));
        // SAFETY: `ctx` was checked above and is writable per the contract.
        try_status!(unsafe { store_engine(ctx, xts) });
        if !verified_slot.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { verified_slot.write_unaligned(c_int::from(slot == 1)) };
        }
        envol_status::ENVOL_OK
    })
}

/// Builds one complete header copy — parameters `*params`, the wrapped
/// data key `blob` (as a key service's generate-data-key made it, for the
/// context `envol_header_context` gives), sequence number `sequence`, state
/// active, MAC under a key derived from the plaintext data key `dek`
/// (`dek_len` bytes: 64 for AES-256-XTS, 32 for AES-128-XTS), checksum —
/// into `slot_out` (`ENVOL_HEADER_SLOT_SIZE` bytes, zero-padded): for
/// tools that create volumes themselves. Write it to both slots (A, flush,
/// B, flush); a later update takes a higher sequence number.
///
/// `dek_len` not 32 or 64 is `ENVOL_ERR_KEY_LENGTH`, not the cipher's
/// size `ENVOL_ERR_KEY_MISMATCH`; a blob that does not parse or holds a key
/// of the wrong size `ENVOL_ERR_HEADER_MALFORMED`; bad parameters as for
/// `envol_volume_create`. The blob is not unwrapped here: a blob that does
/// not hold `dek` makes a header that attach refuses.
///
/// # Safety
/// `params` NULL or readable; `blob` NULL or valid for `blob_len` reads;
/// `dek` NULL or valid for `dek_len` reads; `slot_out` NULL or valid for
/// `ENVOL_HEADER_SLOT_SIZE` writes.
///
/// cbindgen:ptrs-as-arrays=[[slot_out;ENVOL_HEADER_SLOT_SIZE]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_header_build(
    params: *const envol_volume_params,
    blob: *const u8,
    blob_len: usize,
    sequence: u64,
    dek: *const u8,
    dek_len: usize,
    slot_out: *mut u8,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract on each argument.
        let params = try_status!(unsafe { in_params(params) });
        // SAFETY: as above.
        let blob = try_status!(unsafe { in_slice(blob, blob_len) });
        // SAFETY: as above.
        let dek = try_status!(unsafe { in_slice(dek, dek_len) });
        if slot_out.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        try_status!(check_span(slot_out as usize, SLOT_SIZE));
        let size = try_status!(
            KeySize::from_key_len(dek.len()).map_err(|_| envol_status::ENVOL_ERR_KEY_LENGTH)
        );
        if size != params.suite.key_size() {
            return envol_status::ENVOL_ERR_KEY_MISMATCH;
        }
        if params.volume_id == [0; 16] {
            return envol_status::ENVOL_ERR_VOLUME_PARAMS;
        }
        let mut h = try_status!(Header::new(params, blob));
        h.sequence = sequence;
        try_status!(h.seal_mac(dek));
        let mut out = [0u8; SLOT_SIZE];
        try_status!(h.encode(&mut out));
        if overlaps(slot_out, SLOT_SIZE, blob) || overlaps(slot_out, SLOT_SIZE, dek) {
            return envol_status::ENVOL_ERR_OVERLAP;
        }
        // SAFETY: valid for `SLOT_SIZE` writes per the contract; `out` is
        // our own.
        unsafe { core::ptr::copy_nonoverlapping(out.as_ptr(), slot_out, SLOT_SIZE) };
        envol_status::ENVOL_OK
    })
}
