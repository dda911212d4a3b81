//! The data path of a C volume, and the calls that keep it going: reads
//! and writes through the device table, zero-copy encrypt/decrypt for
//! hypervisors that do their own I/O, flush, lease renewal, rewrap and
//! retire. Every call here enters the volume's gate (no lock) and may run
//! on any number of threads at once.
#![allow(clippy::too_many_arguments)]

use core::ffi::c_char;
#[cfg(not(feature = "std"))]
use core::sync::atomic::Ordering;

use envol::volume::LeaseStatus;

use crate::boundary::{check_span, envol_status, guard, guard_secret, partial_overlap, try_status};
use crate::kms::{CallbackKms, in_key_id, in_principal};
use crate::volume::{
    Slot, State, attached, detach, detached, enter, envol_volume, overlaps_struct, slot_ptr,
};

/// Checks a caller buffer: non-NULL, a valid span, outside the volume.
fn check_buf(slot: *const Slot, p: *const u8, len: usize) -> Result<(), envol_status> {
    if p.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    check_span(p as usize, len)?;
    if overlaps_struct(slot, p, len) {
        return Err(envol_status::ENVOL_ERR_OVERLAP);
    }
    Ok(())
}

/// Reads `len` bytes (whole sectors) from data sector `first_sector` on,
/// decrypted, into `buf`. `len` 0 is a no-op.
///
/// A `len` that is not a multiple of the sector size is
/// `ENVOL_ERR_LENGTH`; sectors past the end of the volume
/// `ENVOL_ERR_OUT_OF_RANGE`; `buf` overlapping `*vol` `ENVOL_ERR_OVERLAP`;
/// all with `buf` untouched. A device failure is `ENVOL_ERR_IO`, and then
/// (the one exception to "nothing written on failure") `buf` may hold
/// whatever the device wrote into it. Detached (or detaching):
/// `ENVOL_ERR_VOLUME_DETACHED`; key wiped by a lost lease:
/// `ENVOL_ERR_LEASE_EXPIRED`. Safe from several threads at once.
///
/// # Safety
/// `vol` NULL or an `envol_volume`; `buf` NULL or valid for `len` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_read(
    vol: *mut envol_volume,
    first_sector: u64,
    buf: *mut u8,
    len: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        let pass = try_status!(unsafe { enter(slot, &[State::Attached]) });
        try_status!(check_buf(slot, buf, len));
        // SAFETY: non-NULL, fits a slice, outside `*vol` (checked above), and
        // valid for `len` writes per the contract.
        let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
        // SAFETY: entered attached.
        try_status!(unsafe { attached(slot, &pass) }.read_sectors(first_sector, out));
        envol_status::ENVOL_OK
    })
}

/// Encrypts `len` bytes (whole sectors) from `buf` and writes them at data
/// sector `first_sector` on. `buf` is only read: encryption goes through a
/// bounce buffer (per thread on hosted builds; the one inside `*vol` on
/// bare metal), 64 KiB at a time, so the device sees writes of at most
/// 64 KiB. `len` 0 is a no-op. For no copy at all, encrypt into your own
/// buffer with `envol_volume_encrypt` and write it yourself.
///
/// Errors as for `envol_volume_read`; on `ENVOL_ERR_IO` a prefix of the
/// sectors may have been written. Safe from several threads at once.
///
/// # Safety
/// `vol` NULL or an `envol_volume`; `buf` NULL or valid for `len` reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_write(
    vol: *mut envol_volume,
    first_sector: u64,
    buf: *const u8,
    len: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        let pass = try_status!(unsafe { enter(slot, &[State::Attached]) });
        try_status!(check_buf(slot, buf, len));
        // SAFETY: non-NULL, fits a slice, outside `*vol` (checked above), and
        // valid for `len` reads per the contract.
        let data = unsafe { core::slice::from_raw_parts(buf, len) };
        // SAFETY: entered attached.
        let a = unsafe { attached(slot, &pass) };
        try_status!(with_scratch(slot, |s| a.write_sectors(
            first_sector,
            data,
            s
        )));
        envol_status::ENVOL_OK
    })
}

/// Runs `f` with a bounce buffer of `BOUNCE` bytes: this thread's own on
/// hosted builds.
#[cfg(feature = "std")]
fn with_scratch<R>(_slot: *mut Slot, f: impl FnOnce(&mut [u8]) -> R) -> R {
    use std::cell::RefCell;
    std::thread_local! {
        static SCRATCH: RefCell<std::vec::Vec<u8>> = const { RefCell::new(std::vec::Vec::new()) };
    }
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < crate::volume::BOUNCE {
            s.resize(crate::volume::BOUNCE, 0);
        }
        f(&mut s)
    })
}

/// Runs `f` with the bounce buffer inside the volume, taking turns with
/// other threads (bare-metal builds have no thread-local storage).
#[cfg(not(feature = "std"))]
fn with_scratch<R>(slot: *mut Slot, f: impl FnOnce(&mut [u8]) -> R) -> R {
    // SAFETY: `slot` is entered by the caller (the struct is live); the
    // flag is an atomic inside it.
    let busy = unsafe { &(*slot).bounce_busy };
    while busy
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    // SAFETY: this thread set the flag, so it alone uses the buffer until
    // it clears it below.
    let r = f(unsafe { &mut (*slot).bounce });
    busy.store(false, Ordering::Release);
    r
}

/// A zero-copy data call: encrypt (`enc`) or decrypt `len` bytes of whole
/// sectors from `input` into `output` (the same pointer: in place).
///
/// # Safety
/// As for [`envol_volume_encrypt`].
unsafe fn transform(
    vol: *mut envol_volume,
    first_sector: u64,
    input: *const u8,
    output: *mut u8,
    len: usize,
    enc: bool,
) -> envol_status {
    let slot = try_status!(slot_ptr(vol));
    // SAFETY: the caller's contract on `vol`.
    let pass = try_status!(unsafe { enter(slot, &[State::Attached]) });
    try_status!(check_buf(slot, input, len));
    try_status!(check_buf(slot, output, len));
    if partial_overlap(input as usize, output as usize, len) {
        return envol_status::ENVOL_ERR_OVERLAP;
    }
    // SAFETY: entered attached.
    let a = unsafe { attached(slot, &pass) };
    let r = if core::ptr::eq(input, output) {
        // SAFETY: non-NULL, fits, outside `*vol`, valid for `len` reads
        // and writes per the contract.
        let buf = unsafe { core::slice::from_raw_parts_mut(output, len) };
        if enc {
            a.encrypt_sectors(first_sector, buf)
        } else {
            a.decrypt_sectors(first_sector, buf)
        }
    } else {
        // SAFETY: as above; the two buffers do not overlap (checked).
        let (src, dst) = unsafe {
            (
                core::slice::from_raw_parts(input, len),
                core::slice::from_raw_parts_mut(output, len),
            )
        };
        if enc {
            a.encrypt_sectors_to(first_sector, src, dst)
        } else {
            a.decrypt_sectors_to(first_sector, src, dst)
        }
    };
    try_status!(r);
    envol_status::ENVOL_OK
}

/// Encrypts `len` bytes (whole sectors) of guest data at `input` into
/// `output`, as data sectors `first_sector..` of the volume: for
/// hypervisors that submit the ciphertext with their own (asynchronous)
/// I/O, at device offset `data_offset + first_sector * sector_size` (learn
/// both from `envol_volume_info`). `input == output` is in place; no other
/// copy is made. Errors as for `envol_volume_read` (a partial overlap of
/// the two buffers is `ENVOL_ERR_OVERLAP`), with `output` untouched. Safe
/// from several threads at once.
///
/// # Safety
/// `vol` NULL or an `envol_volume`; `input` NULL or valid for `len` reads;
/// `output` NULL or valid for `len` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_encrypt(
    vol: *mut envol_volume,
    first_sector: u64,
    input: *const u8,
    output: *mut u8,
    len: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: forwarded contract.
        unsafe { transform(vol, first_sector, input, output, len, true) }
    })
}

/// Decrypts `len` bytes (whole sectors) read from data sectors
/// `first_sector..` of the volume from `input` into `output` (`input ==
/// output`: in place): the zero-copy form of a guest read. As for
/// `envol_volume_encrypt`.
///
/// # Safety
/// As for [`envol_volume_encrypt`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_decrypt(
    vol: *mut envol_volume,
    first_sector: u64,
    input: *const u8,
    output: *mut u8,
    len: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: forwarded contract.
        unsafe { transform(vol, first_sector, input, output, len, false) }
    })
}

/// Makes written sectors durable (the device's `flush`; a no-op if it has
/// none), attached or detached. Empty: `ENVOL_ERR_NOT_INITIALIZED`.
///
/// # Safety
/// `vol` NULL or an `envol_volume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_flush(vol: *mut envol_volume) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        let pass = try_status!(unsafe { enter(slot, &[State::Detached, State::Attached]) });
        let r = if pass.state() == crate::volume::ATTACHED {
            // SAFETY: entered attached.
            unsafe { attached(slot, &pass) }.flush()
        } else {
            // SAFETY: entered detached.
            unsafe { detached(slot, &pass) }.flush()
        };
        try_status!(r);
        envol_status::ENVOL_OK
    })
}

/// The state of a volume's lease, as `envol_volume_maintain` reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum envol_lease_state {
    /// The volume has no lease.
    ENVOL_LEASE_OFF = 0,
    /// Not due for renewal.
    ENVOL_LEASE_VALID = 1,
    /// Renewed just now.
    ENVOL_LEASE_RENEWED = 2,
    /// The key service could not be reached; the key is kept until
    /// `deadline`.
    ENVOL_LEASE_UNREACHABLE = 3,
}

/// What `envol_volume_maintain` found or did.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envol_lease_info {
    /// An `envol_lease_state` value.
    pub state: u32,
    /// When the lease ends (the lease clock's seconds); 0 without a lease.
    pub expires_at: u64,
    /// When the key is wiped unless renewed first (`expires_at` plus the
    /// grace period); 0 without a lease.
    pub deadline: u64,
}

/// Renews the attached volume's lease if it is due, as the principal that
/// attached: the key service decides again exactly as for attach (and
/// audits it). Call it from a timer, well within the lease's
/// `renew_before_s`; it does nothing when not due. `*info` (may be NULL)
/// gets the lease's state.
///
/// A refusal (key disabled or pending deletion, grant revoked, policy
/// changed) wipes the key at once and comes back as the key service's
/// status; from then on every data call fails with
/// `ENVOL_ERR_LEASE_EXPIRED` (detach, and attach again once allowed). An
/// unreachable key service is tolerated until the lease's end plus its
/// grace period (`ENVOL_OK`, state `ENVOL_LEASE_UNREACHABLE`); after that
/// the key is wiped and the result is `ENVOL_ERR_LEASE_EXPIRED`. Data
/// calls keep running on other threads meanwhile; a detach waits for a
/// renewal in progress.
///
/// # Safety
/// `vol` NULL or an `envol_volume`; `info` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_maintain(
    vol: *mut envol_volume,
    info: *mut envol_lease_info,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        let pass = try_status!(unsafe { enter(slot, &[State::Attached]) });
        // SAFETY: a live struct: the table was stored with the volume.
        let table = unsafe { (&raw const (*slot).kms).read() };
        // SAFETY: the contract given with the table at create/open.
        let mut service = unsafe { CallbackKms::new(table) };
        // SAFETY: entered attached.
        let vol = unsafe { attached(slot, &pass) };
        let status = try_status!(vol.maintain(&mut service));
        let deadline = vol.lease_deadline().unwrap_or(0);
        let (state, expires_at, deadline) = match status {
            LeaseStatus::Off => (envol_lease_state::ENVOL_LEASE_OFF, 0, 0),
            LeaseStatus::Valid { expires_at } => {
                (envol_lease_state::ENVOL_LEASE_VALID, expires_at, deadline)
            }
            LeaseStatus::Renewed { expires_at } => {
                (envol_lease_state::ENVOL_LEASE_RENEWED, expires_at, deadline)
            }
            LeaseStatus::Unreachable {
                expires_at,
                deadline,
            } => (
                envol_lease_state::ENVOL_LEASE_UNREACHABLE,
                expires_at,
                deadline,
            ),
            // A variant newer than this mapping: a gap in envol itself.
            #[allow(unreachable_patterns)]
            _ => return envol_status::ENVOL_ERR_INTERNAL,
        };
        if !info.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe {
                info.write_unaligned(envol_lease_info {
                    state: state as u32,
                    expires_at,
                    deadline: if deadline == 0 { expires_at } else { deadline },
                });
            }
        }
        envol_status::ENVOL_OK
    })
}

/// Rewraps the data key of an attached volume under master key
/// `new_key_id`, as `principal`, through the key service's re-encrypt
/// (`kms->re_encrypt`; the plaintext key never leaves the service). The new
/// wrap is then unwrapped (`kms->decrypt_data_key`, as `principal`, so it
/// needs decrypt rights on the new key) and compared with the volume's key
/// in constant time before anything is written: a key service answering
/// with a wrong blob is `ENVOL_ERR_KEY_MISMATCH` and the header stays as it
/// was. The data is not touched. The header update is crash-safe: the slot
/// not holding the current copy is written first and flushed, then the
/// other; a failure or crash at any byte leaves a volume that opens with
/// the old or the new wrap. On `ENVOL_ERR_IO` the new header may already be
/// in effect in one slot (`envol_volume_info` tells); otherwise on error
/// the header is unchanged. The volume stays attached and usable, and data
/// calls on other threads go on meanwhile.
///
/// NULL `re_encrypt` is `ENVOL_ERR_KMS_UNAVAILABLE` (the service cannot);
/// the key service's refusals come back as its status. Detached:
/// `ENVOL_ERR_VOLUME_DETACHED`.
///
/// # Safety
/// `vol` NULL or an `envol_volume`; strings NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_rewrap(
    vol: *mut envol_volume,
    principal: *const c_char,
    new_key_id: *const c_char,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        let pass = try_status!(unsafe { enter(slot, &[State::Attached]) });
        // SAFETY: the caller's contract on each argument.
        let principal = try_status!(unsafe { in_principal(principal) });
        // SAFETY: as above.
        let key_id = try_status!(unsafe { in_key_id(new_key_id) });
        // SAFETY: a live struct: the table was stored with the volume.
        let table = unsafe { (&raw const (*slot).kms).read() };
        // SAFETY: the contract given with the table at create/open.
        let mut service = unsafe { CallbackKms::new(table) };
        // SAFETY: entered attached.
        try_status!(unsafe { attached(slot, &pass) }.rewrap(&mut service, principal, key_id));
        envol_status::ENVOL_OK
    })
}

/// Retires an attached volume, as `principal`: first the key service is
/// told (`kms->retire_context`, if the table has it: the reference service
/// then keeps a tombstone and never unwraps this volume's key for its
/// context again, whatever old header copy turns up), then the header is
/// marked retired (crash-safely, as for rewrap), then the volume is
/// detached (flushed, key wiped). Attaching it is refused from then on with
/// `ENVOL_ERR_VOLUME_RETIRED`. On error before the header was written the
/// volume stays attached. Detached: `ENVOL_ERR_VOLUME_DETACHED`.
///
/// # Safety
/// `vol` NULL or an `envol_volume`; `principal` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_retire(
    vol: *mut envol_volume,
    principal: *const c_char,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        let pass = try_status!(unsafe { enter(slot, &[State::Attached]) });
        // SAFETY: the caller's contract.
        let principal = try_status!(unsafe { in_principal(principal) });
        // SAFETY: a live struct: the table was stored with the volume.
        let table = unsafe { (&raw const (*slot).kms).read() };
        // SAFETY: the contract given with the table at create/open.
        let mut service = unsafe { CallbackKms::new(table) };
        // SAFETY: entered attached.
        let marked = unsafe { attached(slot, &pass) }.mark_retired(&mut service, principal);
        drop(pass);
        try_status!(marked);
        // SAFETY: the caller's contract on `vol`. Detached meanwhile by
        // another thread is as good.
        match unsafe { detach(slot) } {
            envol_status::ENVOL_ERR_VOLUME_DETACHED => envol_status::ENVOL_OK,
            s => s,
        }
    })
}
