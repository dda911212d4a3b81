//! Volumes through the C ABI: the caller-allocated [`envol_volume`], its
//! device and clock callback tables, and its lifecycle (create, open,
//! attach, detach, close, info, leases). The data path lives in
//! `volume_io.rs`, the low-level header calls in `header.rs`.
//!
//! One `envol_volume` may be used by many threads at once. Its first word
//! is a gate (see `envol::gate`): data calls, flush, rewrap, lease renewal
//! and info enter it without a lock and leave when done; calls that rebuild
//! the struct in place (attach, detach, retire, set_lease, close) take it,
//! which turns away calls that arrive afterwards
//! (`ENVOL_ERR_VOLUME_DETACHED`) and waits for those already inside —
//! device I/O and key-service calls included — to finish. Create and open
//! need an empty struct and wait for no one.
//!
//! Inside, the gate's state says what the rest holds: nothing (empty), a
//! detached `Volume` or an `AttachedVolume`. Every transition takes the
//! gate, moves the value out, writes the new value and releases the gate
//! in its new state: a panic in between (caught at the boundary) leaves an
//! empty struct and a value dropped exactly once.
// The C signatures below are the documented ABI; their argument counts are
// what C callers see, not something to fold into structs.
#![allow(clippy::too_many_arguments)]

use core::ffi::{c_char, c_int, c_void};
use core::mem::{ManuallyDrop, align_of, size_of};
use core::sync::atomic::AtomicBool;

use envol::gate::{BUSY, Gate, Pass};
use envol::header::{self, CipherSuite, HeaderError, Params, SLOT_SIZE};
use envol::kms::Clock;
use envol::volume::{
    AttachedVolume, BlockDevice, CreateOptions, IoError, LeaseConfig, Volume, VolumeError,
};

use crate::boundary::{
    envol_backend, envol_status, guard, guard_secret, ranges_overlap, try_status,
};
use crate::kms::{CallbackKms, ENVOL_MAX_KEY_ID, envol_kms_callbacks, in_key_id, in_principal};

/// Size of one volume header slot in bytes. A volume starts with two
/// copies: slot A at byte 0, slot B at byte `ENVOL_HEADER_SLOT_SIZE`.
pub const ENVOL_HEADER_SLOT_SIZE: usize = 4096;
/// Bytes reserved for the two header copies at the start of a volume; the
/// smallest data offset.
pub const ENVOL_HEADERS_SIZE: u64 = 8192;
/// The usual data offset (1 MiB): aligned for every sector size.
pub const ENVOL_DEFAULT_DATA_OFFSET: u64 = 1_048_576;
/// Smallest sector size of a volume, in bytes.
pub const ENVOL_MIN_SECTOR_SIZE: u32 = 512;
/// Largest sector size of a volume, in bytes.
pub const ENVOL_MAX_SECTOR_SIZE: u32 = 65_536;
/// Size in bytes of [`envol_volume`]; fixed for this major version.
pub const ENVOL_VOLUME_SIZE: usize = 98_304;
/// Alignment in bytes of [`envol_volume`].
pub const ENVOL_VOLUME_ALIGN: usize = 64;

const _: () = assert!(ENVOL_HEADER_SLOT_SIZE == SLOT_SIZE);
const _: () = assert!(ENVOL_HEADERS_SIZE == header::HEADERS_SIZE);
const _: () = assert!(ENVOL_DEFAULT_DATA_OFFSET == header::DEFAULT_DATA_OFFSET);
const _: () = assert!(ENVOL_MIN_SECTOR_SIZE == header::MIN_SECTOR);
const _: () = assert!(ENVOL_MAX_SECTOR_SIZE == header::MAX_SECTOR);

/// The sector cipher of a volume, for the `cipher` field of
/// [`envol_volume_params`] (a plain `uint32_t` there; other values are
/// refused with `ENVOL_ERR_INVALID_ARGUMENT`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum envol_cipher {
    /// AES-256-XTS (`aes-xts-plain64`, 64-byte data key).
    ENVOL_CIPHER_AES_XTS_256 = 1,
    /// AES-128-XTS (`aes-xts-plain64`, 32-byte data key).
    ENVOL_CIPHER_AES_XTS_128 = 2,
}

/// The parameters of a volume, fixed at creation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct envol_volume_params {
    /// An `envol_cipher` value.
    pub cipher: u32,
    /// Sector size in bytes: a power of two in 512..=65536.
    pub sector_size: u32,
    /// Byte offset of data sector 0: at least `ENVOL_HEADERS_SIZE`, a
    /// multiple of 4096 and of the sector size (`ENVOL_DEFAULT_DATA_OFFSET`
    /// always is).
    pub data_offset: u64,
    /// Size of the data area in bytes: a non-zero multiple of the sector
    /// size. The device must hold `data_offset + volume_size` bytes.
    pub volume_size: u64,
    /// The volume's unique id: random, never all zero (the encryption
    /// context names it as `vol-<32 hex digits>`).
    pub volume_id: [u8; 16],
}

/// A block device as a table of C callbacks: how the hypervisor gives envol
/// its disk (a file, a block device, a network volume, memory).
///
/// Each callback gets `user` first and returns 0 on success or any other
/// value (an errno, say) on failure, which envol reports as
/// `ENVOL_ERR_IO`. Reads and writes are exact: 0 means all `len` bytes were
/// transferred. `read_at` and `write_at` are required; `flush` (make earlier
/// writes durable, e.g. `fsync`) may be NULL when writes are durable as
/// they return. Header updates rely on `flush` for crash safety. Callbacks
/// are never called with `len` 0 and must not call back into the
/// `envol_volume` that called them. When a volume is used from several
/// threads they are called from those threads, at once: positional I/O
/// (`pread`/`pwrite`, `fdatasync`) is safe for that.
// The function types stay inline so the header shows each signature in place.
#[allow(clippy::type_complexity)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envol_block_device {
    /// Passed unchanged as the first argument of every callback.
    pub user: *mut c_void,
    /// Reads `len` bytes at byte `offset` into `buf`.
    pub read_at: Option<
        unsafe extern "C" fn(user: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int,
    >,
    /// Writes `len` bytes from `buf` at byte `offset`.
    pub write_at: Option<
        unsafe extern "C" fn(user: *mut c_void, offset: u64, buf: *const u8, len: usize) -> c_int,
    >,
    /// Makes earlier writes durable; may be NULL.
    pub flush: Option<unsafe extern "C" fn(user: *mut c_void) -> c_int>,
}

/// How long an attached volume may keep its data key without the key
/// service's renewed consent (`envol_volume_set_lease`). Times are in
/// seconds of the lease's clock.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envol_lease {
    /// Length of a lease; 0 turns leases off.
    pub duration_s: u64,
    /// Renew this long before the lease ends (0: half-way; at most
    /// `duration_s`).
    pub renew_before_s: u64,
    /// How long past the lease's end an unreachable key service is waited
    /// for before the key is wiped (availability against revocation
    /// delay). A refusal is never given grace.
    pub grace_s: u64,
    /// The lease's clock: seconds of any epoch, non-decreasing, safe to call
    /// from any thread. NULL: the system clock (hosted builds; required on
    /// bare metal).
    pub now: Option<unsafe extern "C" fn(user: *mut c_void) -> u64>,
    /// Passed unchanged to `now`.
    pub user: *mut c_void,
}

impl From<HeaderError> for envol_status {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::BadMagic => envol_status::ENVOL_ERR_HEADER_BAD_MAGIC,
            HeaderError::UnsupportedVersion(_) => envol_status::ENVOL_ERR_HEADER_VERSION,
            HeaderError::UnknownFlags(_) => envol_status::ENVOL_ERR_HEADER_FLAGS,
            HeaderError::Corrupt => envol_status::ENVOL_ERR_HEADER_CORRUPT,
            HeaderError::BothCorrupt => envol_status::ENVOL_ERR_HEADER_BOTH_CORRUPT,
            HeaderError::Malformed("volume id") => envol_status::ENVOL_ERR_VOLUME_PARAMS,
            HeaderError::Malformed(_) => envol_status::ENVOL_ERR_HEADER_MALFORMED,
            HeaderError::Tampered => envol_status::ENVOL_ERR_HEADER_TAMPERED,
            HeaderError::BufferTooSmall => envol_status::ENVOL_ERR_BUFFER_TOO_SMALL,
            HeaderError::WrongVolume => envol_status::ENVOL_ERR_WRONG_VOLUME,
            // A variant newer than this mapping: a gap in envol itself.
            _ => envol_status::ENVOL_ERR_INTERNAL,
        }
    }
}

impl From<VolumeError> for envol_status {
    fn from(e: VolumeError) -> Self {
        match e {
            VolumeError::Io(_) => envol_status::ENVOL_ERR_IO,
            VolumeError::Header(h) => h.into(),
            VolumeError::Kms(k) => k.into(),
            VolumeError::Xts(x) => x.into(),
            VolumeError::OutOfRange => envol_status::ENVOL_ERR_OUT_OF_RANGE,
            VolumeError::Retired => envol_status::ENVOL_ERR_VOLUME_RETIRED,
            VolumeError::KeyMismatch => envol_status::ENVOL_ERR_KEY_MISMATCH,
            VolumeError::Exists => envol_status::ENVOL_ERR_VOLUME_EXISTS,
            VolumeError::LeaseExpired => envol_status::ENVOL_ERR_LEASE_EXPIRED,
            // A variant newer than this mapping: a gap in envol itself.
            _ => envol_status::ENVOL_ERR_INTERNAL,
        }
    }
}

/// C parameters as checked Rust ones: an unknown cipher is
/// `ENVOL_ERR_INVALID_ARGUMENT`, any bound broken `ENVOL_ERR_VOLUME_PARAMS`.
pub(crate) fn params_from_c(p: &envol_volume_params) -> Result<Params, envol_status> {
    let suite = match p.cipher {
        1 => CipherSuite::AesXts256Plain64,
        2 => CipherSuite::AesXts128Plain64,
        _ => return Err(envol_status::ENVOL_ERR_INVALID_ARGUMENT),
    };
    let params = Params {
        suite,
        sector_size: p.sector_size,
        data_offset: p.data_offset,
        volume_size: p.volume_size,
        volume_id: p.volume_id,
    };
    params
        .check()
        .map_err(|_| envol_status::ENVOL_ERR_VOLUME_PARAMS)?;
    Ok(params)
}

/// Rust parameters as C ones.
pub(crate) fn params_to_c(p: &Params) -> envol_volume_params {
    let cipher = match p.suite {
        CipherSuite::AesXts256Plain64 => envol_cipher::ENVOL_CIPHER_AES_XTS_256,
        CipherSuite::AesXts128Plain64 => envol_cipher::ENVOL_CIPHER_AES_XTS_128,
    };
    envol_volume_params {
        cipher: cipher as u32,
        sector_size: p.sector_size,
        data_offset: p.data_offset,
        volume_size: p.volume_size,
        volume_id: p.volume_id,
    }
}

/// Reads a plain-data struct from C (any alignment), or reports NULL.
///
/// # Safety
/// `ptr` NULL or valid for one read of `T`, whose every bit pattern C can
/// produce is a valid `T` (raw integers, raw pointers, `Option` of function
/// pointers).
pub(crate) unsafe fn read_in<T: Copy>(ptr: *const T) -> Result<T, envol_status> {
    if ptr.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    // SAFETY: non-NULL and readable per the contract.
    Ok(unsafe { ptr.read_unaligned() })
}

/// Volume parameters from C.
///
/// # Safety
/// `ptr` NULL or valid for one read.
pub(crate) unsafe fn in_params(ptr: *const envol_volume_params) -> Result<Params, envol_status> {
    // SAFETY: forwarded contract; the struct is integers and bytes.
    params_from_c(&unsafe { read_in(ptr) }?)
}

/// A device table from C; `read_at` and `write_at` must be set.
///
/// # Safety
/// `ptr` NULL or valid for one read.
unsafe fn in_device(ptr: *const envol_block_device) -> Result<envol_block_device, envol_status> {
    // SAFETY: forwarded contract; raw pointer and nullable function pointers.
    let t = unsafe { read_in(ptr) }?;
    if t.read_at.is_none() || t.write_at.is_none() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    Ok(t)
}

/// A key-service table from C.
///
/// # Safety
/// `ptr` NULL or valid for one read.
pub(crate) unsafe fn in_kms(
    ptr: *const envol_kms_callbacks,
) -> Result<envol_kms_callbacks, envol_status> {
    // SAFETY: forwarded contract; raw pointer and nullable function pointers.
    unsafe { read_in(ptr) }
}

/// A volume id from C (16 bytes), NULL for none.
///
/// # Safety
/// `ptr` NULL or valid for 16 reads.
pub(crate) unsafe fn in_volume_id(ptr: *const u8) -> Option<[u8; 16]> {
    // SAFETY: forwarded contract.
    unsafe { read_in(ptr.cast::<[u8; 16]>()) }.ok()
}

/// A caller-allocated volume (`ENVOL_VOLUME_SIZE` bytes, 64-byte aligned):
/// everything the high-level calls need, with no allocation — copies of the
/// device and key-service tables and of the lease settings, the header
/// copies, the XTS engine while attached, and a bounce buffer (bare-metal
/// builds) through which `envol_volume_write` encrypts.
///
/// Zero it (or `envol_volume_close` it) before first use; fill it with
/// `envol_volume_create` or `envol_volume_open`; end with
/// `envol_volume_close`, which wipes it. The bytes are opaque. A live
/// volume must not be copied or moved, and must not be called from inside
/// its own device or key-service callbacks. Any number of threads may use
/// it at once (see each call for what it waits for). It is large: give it
/// static storage or a heap block rather than a small stack.
#[repr(C, align(64))]
pub struct envol_volume {
    opaque: [u8; ENVOL_VOLUME_SIZE],
}

/// Size of the bounce buffer: one sector of the largest size.
pub(crate) const BOUNCE: usize = 65_536;
const _: () = assert!(BOUNCE as u64 == header::MAX_SECTOR as u64);

mod callbacks;
mod slot;

pub use callbacks::{CallbackClock, CallbackDevice};
pub(crate) use slot::*;

/// `sizeof(envol_volume)` of the built library; compare with
/// `ENVOL_VOLUME_SIZE`.
#[unsafe(no_mangle)]
pub extern "C" fn envol_volume_size() -> usize {
    ENVOL_VOLUME_SIZE
}

/// Fills an empty `slot` with a new volume made by `make` from the device
/// and key-service tables (create and open).
///
/// # Safety
/// As for [`envol_volume_create`].
unsafe fn fill(
    vol: *mut envol_volume,
    dev: *const envol_block_device,
    kms: *const envol_kms_callbacks,
    make: impl FnOnce(CallbackDevice, envol_kms_callbacks) -> Result<Either, envol_status>,
) -> envol_status {
    let slot = try_status!(slot_ptr(vol));
    // SAFETY: the caller's contract on each argument.
    let dev = try_status!(unsafe { in_device(dev) });
    // SAFETY: as above.
    let table = try_status!(unsafe { in_kms(kms) });
    // SAFETY: the caller's contract on `vol`: an empty struct, in which no
    // call can be inside.
    let took = unsafe { gate(slot) }.take_idle(|s| decode(s) == State::Empty);
    if let Err(s) = took {
        return wrong_state(decode(s));
    }
    // SAFETY: the caller's contract on the device table.
    let made = make(unsafe { CallbackDevice::new(dev) }, table);
    // SAFETY: held; every byte but the gate is ours to reset, and on
    // failure none is touched (the struct stays as it was, empty).
    unsafe {
        match made {
            Ok(v) => {
                (&raw mut (*slot).kms).write(table);
                (&raw mut (*slot).lease).write(envol_lease {
                    duration_s: 0,
                    renew_before_s: 0,
                    grace_s: 0,
                    now: None,
                    user: core::ptr::null_mut(),
                });
                (&raw mut (*slot).bounce_busy).write(AtomicBool::new(false));
                put_value(slot, v);
                envol_status::ENVOL_OK
            }
            Err(e) => {
                gate(slot).release(0);
                e
            }
        }
    }
}

/// Creates a volume on `dev`: a fresh data key from the key service
/// (`kms->generate_data_key`, as `principal`, wrapped under master key
/// `key_id` for the volume's encryption context), both header copies
/// written and flushed; the data area is not touched. On success `*vol`
/// holds the volume attached, with copies of `*dev` and `*kms` (the tables
/// themselves need not outlive the call; what their `user` pointers point
/// to must outlive `*vol`).
///
/// A device that already holds an envol volume (either header copy) is
/// `ENVOL_ERR_VOLUME_EXISTS`, and nothing is written: creating over it
/// would destroy its data key, and so all its data (use
/// `envol_volume_overwrite` to do that on purpose). An all-zero volume id
/// is `ENVOL_ERR_VOLUME_PARAMS` (use random ids).
///
/// `*vol` must be empty (zeroed or closed): a live one is
/// `ENVOL_ERR_VOLUME_ATTACHED` / `ENVOL_ERR_VOLUME_DETACHED`. NULL
/// `read_at`, `write_at` or `generate_data_key` is
/// `ENVOL_ERR_NULL_POINTER`; an unknown cipher `ENVOL_ERR_INVALID_ARGUMENT`;
/// parameters out of range `ENVOL_ERR_VOLUME_PARAMS`; a device failure
/// `ENVOL_ERR_IO`; the key service's refusals come back as its status. On
/// any error `*vol` stays empty.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`; `dev` and `kms` NULL or
/// readable tables whose callbacks keep their contracts while `*vol` is
/// live; strings NULL or NUL-terminated; `params` NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_create(
    vol: *mut envol_volume,
    dev: *const envol_block_device,
    kms: *const envol_kms_callbacks,
    principal: *const c_char,
    key_id: *const c_char,
    params: *const envol_volume_params,
) -> envol_status {
    // SAFETY: forwarded contract.
    unsafe { create(vol, dev, kms, principal, key_id, params, false) }
}

/// `envol_volume_create` on a device that may hold a volume already: its
/// header copies are replaced and its data key, and so all its data, is
/// lost. For re-formatting on purpose; everything else as for create.
///
/// # Safety
/// As for [`envol_volume_create`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_overwrite(
    vol: *mut envol_volume,
    dev: *const envol_block_device,
    kms: *const envol_kms_callbacks,
    principal: *const c_char,
    key_id: *const c_char,
    params: *const envol_volume_params,
) -> envol_status {
    // SAFETY: forwarded contract.
    unsafe { create(vol, dev, kms, principal, key_id, params, true) }
}

/// Create, or overwrite.
///
/// # Safety
/// As for [`envol_volume_create`].
unsafe fn create(
    vol: *mut envol_volume,
    dev: *const envol_block_device,
    kms: *const envol_kms_callbacks,
    principal: *const c_char,
    key_id: *const c_char,
    params: *const envol_volume_params,
    overwrite: bool,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract on each argument.
        let table = try_status!(unsafe { in_kms(kms) });
        if table.generate_data_key.is_none() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: as above.
        let principal = try_status!(unsafe { in_principal(principal) });
        // SAFETY: as above.
        let key_id = try_status!(unsafe { in_key_id(key_id) });
        // SAFETY: as above.
        let params = try_status!(unsafe { in_params(params) });
        let options = CreateOptions { overwrite };
        // SAFETY: forwarded contract.
        unsafe {
            fill(vol, dev, kms, |dev, table| {
                // The caller's contract on the table (inside `unsafe`).
                let mut service = CallbackKms::new(table);
                let a = Volume::create_with(dev, &mut service, principal, key_id, params, &options)
                    .map_err(envol_status::from)?;
                let (cfg, clock) = (
                    LeaseConfig::OFF,
                    CallbackClock {
                        now: None,
                        user: core::ptr::null_mut(),
                    },
                );
                Ok(Either::Attached(a.with_lease(cfg, clock)))
            })
        }
    })
}

/// Opens the volume on `dev`: reads both header copies and writes nothing
/// (a damaged or stale copy is repaired only once an attach has verified
/// the other). No key is involved; on success `*vol` holds the volume
/// detached (attach it with `envol_volume_attach`), with copies of `*dev`
/// and `*kms`.
///
/// `*vol` must be empty, as for `envol_volume_create`. A device that holds
/// no volume is `ENVOL_ERR_HEADER_BAD_MAGIC`; two unreadable copies
/// `ENVOL_ERR_HEADER_BOTH_CORRUPT` (or the error both share, e.g.
/// `ENVOL_ERR_HEADER_VERSION`); two good copies of two different volumes
/// `ENVOL_ERR_WRONG_VOLUME` (say which you expect with
/// `envol_volume_open_expect`); a device failure `ENVOL_ERR_IO`. On any
/// error `*vol` stays empty.
///
/// # Safety
/// As for [`envol_volume_create`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_open(
    vol: *mut envol_volume,
    dev: *const envol_block_device,
    kms: *const envol_kms_callbacks,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: forwarded contract.
        unsafe { open(vol, dev, kms, None) }
    })
}

/// `envol_volume_open` for a caller that knows which volume it expects:
/// header copies naming another volume id than `volume_id` (16 bytes) are
/// never used, and a device holding only such copies is
/// `ENVOL_ERR_WRONG_VOLUME`. Hypervisors should use this, with the id they
/// recorded at create time.
///
/// # Safety
/// As for [`envol_volume_create`]; `volume_id` NULL or valid for 16 reads.
///
/// cbindgen:ptrs-as-arrays=[[volume_id;16]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_open_expect(
    vol: *mut envol_volume,
    dev: *const envol_block_device,
    kms: *const envol_kms_callbacks,
    volume_id: *const u8,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let Some(id) = (unsafe { in_volume_id(volume_id) }) else {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        };
        // SAFETY: forwarded contract.
        unsafe { open(vol, dev, kms, Some(id)) }
    })
}

/// Open, expecting an id or not.
///
/// # Safety
/// As for [`envol_volume_create`].
unsafe fn open(
    vol: *mut envol_volume,
    dev: *const envol_block_device,
    kms: *const envol_kms_callbacks,
    expected: Option<[u8; 16]>,
) -> envol_status {
    // SAFETY: forwarded contract.
    unsafe {
        fill(vol, dev, kms, |dev, _| {
            let v = match expected {
                Some(id) => Volume::open_expecting(dev, id),
                None => Volume::open(dev),
            };
            v.map(Either::Detached).map_err(|(_, e)| e.into())
        })
    }
}

/// Attaches a detached volume as `principal`: unwraps the data key of the
/// newest header copy through the key service (`kms->decrypt_data_key`)
/// with its encryption context and verifies its MAC — falling back to the
/// other copy if the newest proves not to be this volume's — then sets up
/// the XTS engine (best backend) and, if `envol_volume_set_lease` was
/// called, starts a lease. Only after a copy verified is the other slot
/// rewritten with it. The volume is then attached.
///
/// A retired volume is `ENVOL_ERR_VOLUME_RETIRED`; a refusal comes back as
/// the key service's status (`ENVOL_ERR_ACCESS_DENIED`,
/// `ENVOL_ERR_KEY_DISABLED`, ...); a header edited since it was written
/// `ENVOL_ERR_HEADER_TAMPERED`; a data key of the wrong size
/// `ENVOL_ERR_KEY_MISMATCH`; NULL `decrypt_data_key`
/// `ENVOL_ERR_NULL_POINTER`. Attached already: `ENVOL_ERR_VOLUME_ATTACHED`;
/// empty: `ENVOL_ERR_NOT_INITIALIZED`. On any error the volume stays
/// detached.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`; `principal` NULL or
/// NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_attach(
    vol: *mut envol_volume,
    principal: *const c_char,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract.
        let principal = try_status!(unsafe { in_principal(principal) });
        // SAFETY: the caller's contract on `vol`.
        unsafe {
            transition(slot, &[State::Detached], |v| {
                let Either::Detached(v) = v else {
                    return (Some(v), envol_status::ENVOL_ERR_INTERNAL);
                };
                // SAFETY: a live struct: the table was stored with it; the
                // slot is held, so nothing else writes these fields.
                let table = (&raw const (*slot).kms).read();
                if table.decrypt_data_key.is_none() {
                    return (
                        Some(Either::Detached(v)),
                        envol_status::ENVOL_ERR_NULL_POINTER,
                    );
                }
                // SAFETY: the contract given with the table at create/open.
                let mut service = CallbackKms::new(table);
                match v.attach(&mut service, principal) {
                    Ok(a) => {
                        let (cfg, clock) = lease_of(slot);
                        let a = a.with_lease(cfg, clock);
                        (Some(Either::Attached(a)), envol_status::ENVOL_OK)
                    }
                    Err((v, e)) => (Some(Either::Detached(v)), e.into()),
                }
            })
        }
    })
}

/// Detaches an attached volume: waits for calls in flight on other threads
/// (data calls, rewrap, lease renewal) to finish — calls arriving
/// afterwards get `ENVOL_ERR_VOLUME_DETACHED` — then makes every written
/// sector durable (the device's `flush`), and only then wipes the XTS
/// engine and every copy of key material in `*vol`. The volume stays open
/// (detached) and can be attached again. If the flush fails the result is
/// `ENVOL_ERR_IO` and the volume stays attached, so nothing acknowledged
/// is lost silently (retry, or `envol_volume_close` to wipe regardless).
/// Detached already: `ENVOL_ERR_VOLUME_DETACHED`; empty:
/// `ENVOL_ERR_NOT_INITIALIZED`.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_detach(vol: *mut envol_volume) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        unsafe { detach(slot) }
    })
}

/// Detaches the attached volume in a slot (flushing first).
///
/// # Safety
/// `slot` from [`slot_ptr`] on a writable `envol_volume`.
pub(crate) unsafe fn detach(slot: *mut Slot) -> envol_status {
    // SAFETY: forwarded contract.
    unsafe {
        transition(slot, &[State::Attached], |v| match v {
            Either::Attached(a) => match a.detach() {
                Ok(d) => (Some(Either::Detached(d)), envol_status::ENVOL_OK),
                Err((a, e)) => (Some(Either::Attached(a)), e.into()),
            },
            v => (Some(v), envol_status::ENVOL_ERR_INTERNAL),
        })
    }
}

/// Sets the lease attached volumes hold (see `envol_lease`): taken at every
/// attach from now on, and, if the volume is attached, started afresh now.
/// A lease of `duration_s` 0 turns leases off. Then call
/// `envol_volume_maintain` from a timer, well within `renew_before_s`. A
/// NULL clock on a bare-metal build is `ENVOL_ERR_NULL_POINTER`. Waits for
/// calls in flight, as detach does.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`; `lease` NULL or readable, its
/// clock keeping the `envol_lease` contract while `*vol` is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_set_lease(
    vol: *mut envol_volume,
    lease: *const envol_lease,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract.
        let l = try_status!(unsafe { read_in(lease) });
        if cfg!(not(feature = "std")) && l.now.is_none() && l.duration_s != 0 {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: the caller's contract on `vol`.
        unsafe {
            transition(slot, &[State::Detached, State::Attached], |v| {
                // SAFETY: held.
                (&raw mut (*slot).lease).write(l);
                let v = match v {
                    Either::Attached(a) => {
                        let (cfg, clock) = lease_of(slot);
                        Either::Attached(a.with_lease(cfg, clock))
                    }
                    d => d,
                };
                (Some(v), envol_status::ENVOL_OK)
            })
        }
    })
}

/// Ends the use of `*vol`: waits for calls in flight, wipes an attached
/// volume's key, and zeroes every byte of the struct (it is then empty,
/// ready for create or open). Nothing is written to the device — detach
/// first to make written sectors durable. NULL and a misaligned pointer are
/// accepted and ignored.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_close(vol: *mut envol_volume) {
    guard_secret!((), {
        let Ok(slot) = slot_ptr(vol) else {
            return;
        };
        // SAFETY: the caller's struct. An empty (or never written) struct
        // has nobody inside; a live one is taken, which waits for its
        // calls; the value is dropped once, and every byte zeroed.
        unsafe {
            let g = gate(slot);
            let was = match g.take_idle(|s| decode(s) == State::Empty) {
                Ok(_) => State::Empty,
                Err(_) => match g.take(|s| decode(s) != State::Empty) {
                    Ok(s) => decode(s),
                    Err(_) => State::Empty,
                },
            };
            drop(take_value(slot, was));
            zeroize::zeroize_flat_type(slot.cast::<[u8; ENVOL_VOLUME_SIZE]>());
        }
    })
}

/// Describes an open volume (attached or detached): its parameters to
/// `*params_out`, the current header's sequence number (incremented by
/// every header update) to `*sequence`, the master key id its data key is
/// wrapped under, NUL-terminated, to `key_id_out` (room for
/// `ENVOL_MAX_KEY_ID + 1` bytes), and 1 if attached or 0 if detached to
/// `*attached`. Every output is required; an output overlapping `*vol` is
/// `ENVOL_ERR_OVERLAP`. Empty: `ENVOL_ERR_NOT_INITIALIZED`.
///
/// # Safety
/// `vol` NULL or a readable `envol_volume`; `params_out`, `sequence`,
/// `attached` NULL or writable; `key_id_out` NULL or valid for
/// `ENVOL_MAX_KEY_ID + 1` writes.
///
/// cbindgen:ptrs-as-arrays=[[key_id_out;ENVOL_MAX_KEY_ID + 1]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_info(
    vol: *const envol_volume,
    params_out: *mut envol_volume_params,
    sequence: *mut u64,
    key_id_out: *mut c_char,
    attached: *mut c_int,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        if params_out.is_null() || sequence.is_null() || key_id_out.is_null() || attached.is_null()
        {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // The header is read from `*vol` while the outputs are written.
        if overlaps_struct(slot, params_out.cast(), size_of::<envol_volume_params>())
            || overlaps_struct(slot, sequence.cast(), size_of::<u64>())
            || overlaps_struct(slot, key_id_out.cast(), ENVOL_MAX_KEY_ID + 1)
            || overlaps_struct(slot, attached.cast(), size_of::<c_int>())
        {
            return envol_status::ENVOL_ERR_OVERLAP;
        }
        // SAFETY: the caller's contract on `vol`.
        let pass = try_status!(unsafe { enter(slot, &[State::Detached, State::Attached]) });
        let is_attached = pass.state() == ATTACHED;
        let h = if is_attached {
            // SAFETY: entered attached.
            unsafe { self::attached(slot, &pass) }.header()
        } else {
            // SAFETY: entered detached.
            let d = unsafe { detached(slot, &pass) };
            try_status!(header::OwnedHeader::new(&d.header()))
        };
        let h = h.view();
        let id = h.key_id().as_bytes();
        if id.len() > ENVOL_MAX_KEY_ID {
            return envol_status::ENVOL_ERR_INTERNAL;
        }
        // SAFETY: non-NULL and writable per the contract; `key_id_out` has
        // room for `ENVOL_MAX_KEY_ID + 1` >= `id.len() + 1` bytes.
        unsafe {
            params_out.write_unaligned(params_to_c(&h.params));
            sequence.write_unaligned(h.sequence);
            core::ptr::copy_nonoverlapping(id.as_ptr(), key_id_out.cast::<u8>(), id.len());
            key_id_out.add(id.len()).write(0);
            attached.write_unaligned(c_int::from(is_attached));
        }
        envol_status::ENVOL_OK
    })
}

/// The XTS backend of an attached volume, or `ENVOL_BACKEND_AUTO` if `vol`
/// is NULL, misaligned, empty or detached, or its key was wiped by a lost
/// lease (no engine, no key).
///
/// # Safety
/// `vol` NULL or a readable `envol_volume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_backend(vol: *const envol_volume) -> envol_backend {
    guard!(envol_backend::ENVOL_BACKEND_AUTO, {
        let Ok(slot) = slot_ptr(vol) else {
            return envol_backend::ENVOL_BACKEND_AUTO;
        };
        // SAFETY: the caller's contract on `vol`.
        let Ok(pass) = (unsafe { enter(slot, &[State::Attached]) }) else {
            return envol_backend::ENVOL_BACKEND_AUTO;
        };
        // SAFETY: entered attached.
        match unsafe { attached(slot, &pass) }.backend() {
            Some(b) => b.into(),
            None => envol_backend::ENVOL_BACKEND_AUTO,
        }
    })
}

/// Bytes of `envol_volume` the library uses (tests report it).
#[cfg(test)]
pub(crate) fn used_size() -> usize {
    size_of::<Slot>()
}
