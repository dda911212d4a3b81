//! The volume part of the C ABI, at two levels.
//!
//! - High level, no allocation: [`envol_volume`] is a caller-allocated
//!   struct that holds a whole volume — copies of a block-device callback
//!   table ([`envol_block_device`]) and of a key-service callback table
//!   (`envol_kms_callbacks`, e.g. from `envol_local_kms_callbacks`), the
//!   parsed header, and while attached the XTS engine — plus a bounce buffer
//!   through which writes are encrypted, so the caller's data is never
//!   modified. Lifecycle: `envol_volume_create` (→ attached) or
//!   `envol_volume_open` (→ detached), `envol_volume_attach`,
//!   `envol_volume_read` / `_write` / `_flush`, `envol_volume_rewrap`,
//!   `envol_volume_detach` (wipes the key), `envol_volume_retire`,
//!   `envol_volume_close`.
//! - Low level, for hypervisors that do their own (asynchronous) I/O:
//!   `envol_header_parse` / `_check` / `_context` / `_build`, and
//!   `envol_header_unwrap`, which turns the two header slots into an
//!   initialised `envol_xts`; the caller then encrypts and decrypts each
//!   request with `envol_xts_encrypt_sectors` / `_decrypt_sectors`, data
//!   sector `n` being at byte `data_offset + n * sector_size` with
//!   `first_sector = n`.
//!
//! Inside `envol_volume`, a state word says what the rest holds: nothing
//! (empty), a detached `Volume` or an `AttachedVolume`. Every transition
//! first sets the state to empty, then moves the value out, then writes the
//! new value and its state: a panic in between (caught at the boundary)
//! leaves an empty struct and a value dropped exactly once.
// The C signatures below are the documented ABI; their argument counts are
// what C callers see, not something to fold into structs.
#![allow(clippy::too_many_arguments)]

use core::ffi::{c_char, c_int, c_void};
use core::mem::{ManuallyDrop, align_of, size_of};

use envol::header::{self, CipherSuite, Header, HeaderError, Params, SLOT_SIZE, VolumeState};
use envol::kms::Kms;
use envol::volume::{AttachedVolume, BlockDevice, IoError, Volume, VolumeError};
use envol::xts::KeySize;

use crate::boundary::{
    check_span, envol_backend, envol_status, guard, in_slice, ranges_overlap, try_status,
};
use crate::kms::{
    CallbackKms, ENVOL_MAX_KEY_ID, envol_kms_callbacks, envol_kv, in_key_id, in_principal,
};
use crate::xts::{check_ctx, envol_xts, init_best};

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
/// Number of pairs in a volume's encryption context
/// (`envol_header_context`).
pub const ENVOL_HEADER_CONTEXT_PAIRS: usize = 5;
/// Size of a string buffer that always holds a volume's encryption context
/// (`envol_header_context`).
pub const ENVOL_HEADER_CONTEXT_STRINGS: usize = 256;
/// Size in bytes of [`envol_volume`]; fixed for this major version.
pub const ENVOL_VOLUME_SIZE: usize = 81_920;
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
    /// The volume's unique id (the encryption context names it as
    /// `vol-<32 hex digits>`).
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
/// are never called with `len` 0, must not call back into the
/// `envol_volume` that called them, and run on the caller's thread.
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

/// The `BlockDevice` trait over an [`envol_block_device`] table: what the
/// volume code calls when the device is C's. A non-zero callback result
/// becomes `IoError(result)`; zero-length transfers are not passed on.
pub struct CallbackDevice {
    table: envol_block_device,
}

impl CallbackDevice {
    /// Wraps a callback table.
    ///
    /// # Safety
    /// For as long as the value is used, every non-NULL function in `table`
    /// must be safe to call with `table.user` and arguments as documented on
    /// [`envol_block_device`], touching only the `len` bytes at `buf` and
    /// not unwinding.
    pub unsafe fn new(table: envol_block_device) -> CallbackDevice {
        CallbackDevice { table }
    }
}

impl core::fmt::Debug for CallbackDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CallbackDevice")
            .field("flush", &self.table.flush.is_some())
            .finish_non_exhaustive()
    }
}

/// What a device callback result means.
fn io_result(rc: c_int) -> Result<(), IoError> {
    if rc == 0 { Ok(()) } else { Err(IoError(rc)) }
}

/// EIO, for a device table whose required callback is missing.
const EIO: i32 = 5;

impl BlockDevice for CallbackDevice {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        if buf.is_empty() {
            return Ok(());
        }
        let f = self.table.read_at.ok_or(IoError(EIO))?;
        // SAFETY: the table's contract (see `new`); `buf` is a live,
        // writable slice of `buf.len()` bytes.
        io_result(unsafe { f(self.table.user, offset, buf.as_mut_ptr(), buf.len()) })
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        if buf.is_empty() {
            return Ok(());
        }
        let f = self.table.write_at.ok_or(IoError(EIO))?;
        // SAFETY: the table's contract (see `new`); `buf` is a live slice of
        // `buf.len()` bytes.
        io_result(unsafe { f(self.table.user, offset, buf.as_ptr(), buf.len()) })
    }

    fn flush(&mut self) -> Result<(), IoError> {
        match self.table.flush {
            // SAFETY: the table's contract (see `new`).
            Some(f) => io_result(unsafe { f(self.table.user) }),
            None => Ok(()),
        }
    }
}

impl From<HeaderError> for envol_status {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::BadMagic => envol_status::ENVOL_ERR_HEADER_BAD_MAGIC,
            HeaderError::UnsupportedVersion(_) => envol_status::ENVOL_ERR_HEADER_VERSION,
            HeaderError::UnknownFlags(_) => envol_status::ENVOL_ERR_HEADER_FLAGS,
            HeaderError::Corrupt => envol_status::ENVOL_ERR_HEADER_CORRUPT,
            HeaderError::BothCorrupt => envol_status::ENVOL_ERR_HEADER_BOTH_CORRUPT,
            HeaderError::Malformed(_) => envol_status::ENVOL_ERR_HEADER_MALFORMED,
            HeaderError::Tampered => envol_status::ENVOL_ERR_HEADER_TAMPERED,
            HeaderError::BufferTooSmall => envol_status::ENVOL_ERR_BUFFER_TOO_SMALL,
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
            // A variant newer than this mapping: a gap in envol itself.
            _ => envol_status::ENVOL_ERR_INTERNAL,
        }
    }
}

/// C parameters as checked Rust ones: an unknown cipher is
/// `ENVOL_ERR_INVALID_ARGUMENT`, any bound broken `ENVOL_ERR_VOLUME_PARAMS`.
fn params_from_c(p: &envol_volume_params) -> Result<Params, envol_status> {
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
fn params_to_c(p: &Params) -> envol_volume_params {
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
unsafe fn read_in<T: Copy>(ptr: *const T) -> Result<T, envol_status> {
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
unsafe fn in_params(ptr: *const envol_volume_params) -> Result<Params, envol_status> {
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
unsafe fn in_kms(ptr: *const envol_kms_callbacks) -> Result<envol_kms_callbacks, envol_status> {
    // SAFETY: forwarded contract; raw pointer and nullable function pointers.
    unsafe { read_in(ptr) }
}

/// One header slot from C.
///
/// # Safety
/// `ptr` NULL or valid for `ENVOL_HEADER_SLOT_SIZE` reads during `'a`.
unsafe fn in_slot<'a>(ptr: *const u8) -> Result<&'a [u8], envol_status> {
    // SAFETY: forwarded contract.
    unsafe { in_slice(ptr, SLOT_SIZE) }
}

/// A caller-allocated volume (`ENVOL_VOLUME_SIZE` bytes, 64-byte aligned):
/// everything the high-level calls need, with no allocation — copies of the
/// device and key-service tables, the header, the XTS engine while
/// attached, and a bounce buffer of 64 KiB (the largest sector size)
/// through which `envol_volume_write` encrypts.
///
/// Zero it (or `envol_volume_close` it) before first use; fill it with
/// `envol_volume_create` or `envol_volume_open`; end with
/// `envol_volume_close`, which wipes it. The bytes are opaque. A live
/// volume must not be copied or moved, must be used from one thread at a
/// time, and must not be called from inside its own device or key-service
/// callbacks. It is large: give it static storage or a heap block rather
/// than a small stack.
#[repr(C, align(64))]
pub struct envol_volume {
    opaque: [u8; ENVOL_VOLUME_SIZE],
}

/// Size of the bounce buffer: one sector of the largest size.
const BOUNCE: usize = 65_536;
const _: () = assert!(BOUNCE as u64 == header::MAX_SECTOR as u64);

/// "envolVOD" / "envolVOA" as little-endian u64s: the state words of a
/// detached and an attached volume. Anything else means empty.
const DETACHED: u64 = u64::from_le_bytes(*b"envolVOD");
const ATTACHED: u64 = u64::from_le_bytes(*b"envolVOA");
const EMPTY: u64 = 0;

/// The volume a live `envol_volume` holds; which field is valid is said by
/// [`Slot::state`].
union Inner {
    detached: ManuallyDrop<Volume<CallbackDevice>>,
    attached: ManuallyDrop<AttachedVolume<CallbackDevice>>,
}

/// What the library keeps inside `envol_volume`.
#[repr(C)]
struct Slot {
    state: u64,
    kms: envol_kms_callbacks,
    inner: Inner,
    bounce: [u8; BOUNCE],
}

const _: () = assert!(size_of::<envol_volume>() == ENVOL_VOLUME_SIZE);
const _: () = assert!(align_of::<envol_volume>() == ENVOL_VOLUME_ALIGN);
const _: () = assert!(size_of::<Slot>() <= ENVOL_VOLUME_SIZE);
const _: () = assert!(align_of::<Slot>() <= ENVOL_VOLUME_ALIGN);

/// What a volume's state word says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    Detached,
    Attached,
}

/// Checks `vol` for NULL and alignment.
fn slot_ptr(vol: *const envol_volume) -> Result<*mut Slot, envol_status> {
    if vol.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    if !(vol as usize).is_multiple_of(ENVOL_VOLUME_ALIGN) {
        return Err(envol_status::ENVOL_ERR_ALIGNMENT);
    }
    Ok(vol.cast_mut().cast())
}

/// The state of `slot`. Read volatile: C may hand us memory it never wrote.
///
/// # Safety
/// `slot` from [`slot_ptr`] on a readable `envol_volume`.
unsafe fn state_of(slot: *const Slot) -> State {
    // SAFETY: aligned and inside the caller's struct per the contract.
    match unsafe { core::ptr::read_volatile(&raw const (*slot).state) } {
        DETACHED => State::Detached,
        ATTACHED => State::Attached,
        _ => State::Empty,
    }
}

/// Sets the state word.
///
/// # Safety
/// `slot` from [`slot_ptr`] on a writable `envol_volume`; the word must
/// match what `inner` holds once the caller returns.
unsafe fn set_state(slot: *mut Slot, s: u64) {
    // SAFETY: aligned and inside the caller's struct per the contract.
    unsafe { core::ptr::write_volatile(&raw mut (*slot).state, s) }
}

/// The status for a call that found the volume in the wrong state `got`.
fn wrong_state(got: State) -> envol_status {
    match got {
        State::Empty => envol_status::ENVOL_ERR_NOT_INITIALIZED,
        State::Detached => envol_status::ENVOL_ERR_VOLUME_DETACHED,
        State::Attached => envol_status::ENVOL_ERR_VOLUME_ATTACHED,
    }
}

/// Fails unless `slot` is in state `want`, with the status saying what it
/// is instead.
///
/// # Safety
/// As for [`state_of`].
unsafe fn need(slot: *const Slot, want: State) -> Result<(), envol_status> {
    // SAFETY: forwarded contract.
    let got = unsafe { state_of(slot) };
    if got == want {
        Ok(())
    } else {
        Err(wrong_state(got))
    }
}

/// The attached volume in `slot`.
///
/// # Safety
/// `slot` from [`slot_ptr`] on a writable `envol_volume` whose state is
/// attached, not otherwise referenced during `'a`.
unsafe fn attached_mut<'a>(slot: *mut Slot) -> &'a mut AttachedVolume<CallbackDevice> {
    // SAFETY: the state word says `attached` holds a valid value (only
    // `store_attached` sets ATTACHED, right after writing it);
    // `ManuallyDrop` is `repr(transparent)`.
    unsafe { &mut *(&raw mut (*slot).inner.attached).cast::<AttachedVolume<CallbackDevice>>() }
}

/// The header of the live volume in `slot`, with whether it is attached;
/// `ENVOL_ERR_NOT_INITIALIZED` if it is empty.
///
/// # Safety
/// `slot` from [`slot_ptr`] on a readable `envol_volume`, not written
/// during `'a`.
unsafe fn live_header<'a>(slot: *const Slot) -> Result<(Header<'a>, bool), envol_status> {
    // SAFETY: forwarded contract; the state word says which field is valid.
    unsafe {
        match state_of(slot) {
            State::Detached => {
                let v = &*(&raw const (*slot).inner.detached).cast::<Volume<CallbackDevice>>();
                Ok((v.header(), false))
            }
            State::Attached => {
                let v =
                    &*(&raw const (*slot).inner.attached).cast::<AttachedVolume<CallbackDevice>>();
                Ok((v.header(), true))
            }
            State::Empty => Err(envol_status::ENVOL_ERR_NOT_INITIALIZED),
        }
    }
}

/// Zeroes every byte of `inner` (the value there must already have been
/// moved out or dropped, and the state word must say empty).
///
/// # Safety
/// `slot` from [`slot_ptr`] on a writable `envol_volume`.
unsafe fn wipe_inner(slot: *mut Slot) {
    // SAFETY: the bytes are the caller's to write; zeroes are a valid
    // `[u8; N]`, and nothing reads `inner` as a volume while the state is
    // empty. Volatile writes: the wipe is not optimised away.
    unsafe {
        zeroize::zeroize_flat_type((&raw mut (*slot).inner).cast::<[u8; size_of::<Inner>()]>());
    }
}

/// Zeroes every byte of the struct.
///
/// # Safety
/// `slot` from [`slot_ptr`] on a writable `envol_volume` holding no live
/// value (state empty).
unsafe fn wipe_all(slot: *mut Slot) {
    // SAFETY: as for `wipe_inner`, over the whole caller's struct.
    unsafe { zeroize::zeroize_flat_type(slot.cast::<[u8; ENVOL_VOLUME_SIZE]>()) }
}

/// Writes a detached volume into an empty `slot` and marks it detached.
///
/// # Safety
/// `slot` from [`slot_ptr`] on a writable `envol_volume` whose state is
/// empty (whatever `inner` held was moved out or dropped).
unsafe fn store_detached(slot: *mut Slot, v: Volume<CallbackDevice>) {
    // SAFETY: forwarded contract; the value is written before the state
    // word that makes it live.
    unsafe {
        wipe_inner(slot);
        (&raw mut (*slot).inner.detached).write(ManuallyDrop::new(v));
        set_state(slot, DETACHED);
    }
}

/// Writes an attached volume into an empty `slot` and marks it attached.
///
/// # Safety
/// As for [`store_detached`].
unsafe fn store_attached(slot: *mut Slot, v: AttachedVolume<CallbackDevice>) {
    // SAFETY: as for `store_detached`.
    unsafe {
        wipe_inner(slot);
        (&raw mut (*slot).inner.attached).write(ManuallyDrop::new(v));
        set_state(slot, ATTACHED);
    }
}

/// Moves the detached volume out of `slot`, leaving it empty.
///
/// # Safety
/// `slot` from [`slot_ptr`] on a writable `envol_volume` whose state is
/// detached.
unsafe fn take_detached(slot: *mut Slot) -> Volume<CallbackDevice> {
    // SAFETY: the state says `detached` is valid; it is set to empty before
    // the bitwise move, so the bytes left behind are never used as a value
    // again (nothing drops them; they are overwritten or wiped). A panic
    // while the value is out (caught by `guard!`) drops it exactly once,
    // where it then is, and leaves the struct empty, never half-claimed.
    unsafe {
        set_state(slot, EMPTY);
        ManuallyDrop::into_inner((&raw const (*slot).inner.detached).read())
    }
}

/// Moves the attached volume out of `slot` and wipes the bytes it
/// occupied there (key schedule included), leaving the slot empty.
///
/// # Safety
/// `slot` from [`slot_ptr`] on a writable `envol_volume` whose state is
/// attached.
unsafe fn take_attached(slot: *mut Slot) -> AttachedVolume<CallbackDevice> {
    // SAFETY: as for `take_detached`; the stale copy in the struct is then
    // zeroed, so the only copy of the key is the moved value, which wipes
    // itself when dropped.
    unsafe {
        set_state(slot, EMPTY);
        let v = ManuallyDrop::into_inner((&raw const (*slot).inner.attached).read());
        wipe_inner(slot);
        v
    }
}

/// Detaches the attached volume in `slot` in place: the struct's copy of
/// the engine is wiped as the value moves out, the value wipes its key as
/// it detaches, and the bounce buffer (last ciphertext written) is zeroed,
/// so the detached struct holds only the tables and the header — the same
/// bytes as a struct freshly opened on the device.
///
/// # Safety
/// `slot` from [`slot_ptr`] on a writable `envol_volume` whose state is
/// attached.
unsafe fn detach_in_place(slot: *mut Slot) {
    // SAFETY: forwarded contract; `take_attached` leaves the slot empty,
    // which `store_detached` needs.
    unsafe {
        let v = take_attached(slot).detach();
        zeroize::zeroize_flat_type(&raw mut (*slot).bounce);
        store_detached(slot, v);
    }
}

/// Whether `[p, p+len)` overlaps the struct at `slot`.
fn overlaps_struct(slot: *const Slot, p: *const u8, len: usize) -> bool {
    ranges_overlap(slot as usize, ENVOL_VOLUME_SIZE, p as usize, len)
}

/// Fails unless `vol` holds no volume (create, open): a live one is
/// `ENVOL_ERR_VOLUME_ATTACHED` / `ENVOL_ERR_VOLUME_DETACHED`.
///
/// # Safety
/// As for [`state_of`].
unsafe fn need_empty(slot: *const Slot) -> Result<(), envol_status> {
    // SAFETY: forwarded contract.
    match unsafe { state_of(slot) } {
        State::Empty => Ok(()),
        s => Err(wrong_state(s)),
    }
}

/// `sizeof(envol_volume)` of the built library; compare with
/// `ENVOL_VOLUME_SIZE`.
#[unsafe(no_mangle)]
pub extern "C" fn envol_volume_size() -> usize {
    ENVOL_VOLUME_SIZE
}

/// Creates a volume on `dev`: a fresh data key from the key service
/// (`kms->generate_data_key`, as `principal`, wrapped under master key
/// `key_id` for the volume's encryption context), both header copies
/// written and flushed; the data area is not touched. On success `*vol`
/// holds the volume attached, with copies of `*dev` and `*kms` (the tables
/// themselves need not outlive the call; what their `user` pointers point
/// to must outlive `*vol`).
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
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        try_status!(unsafe { need_empty(slot) });
        // SAFETY: the caller's contract on each argument.
        let dev = try_status!(unsafe { in_device(dev) });
        // SAFETY: as above.
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
        // SAFETY: the caller's contract on the tables.
        let (dev, mut service) = unsafe { (CallbackDevice::new(dev), CallbackKms::new(table)) };
        let v = try_status!(Volume::create(dev, &mut service, principal, key_id, params));
        // SAFETY: `slot` is empty (checked above) and writable.
        unsafe {
            wipe_all(slot);
            (&raw mut (*slot).kms).write(table);
            store_attached(slot, v);
        }
        envol_status::ENVOL_OK
    })
}

/// Opens the volume on `dev`: reads both header copies, picks the newest
/// good one and rewrites the other if it is damaged or stale. No key is
/// involved; on success `*vol` holds the volume detached (attach it with
/// `envol_volume_attach`), with copies of `*dev` and `*kms`.
///
/// `*vol` must be empty, as for `envol_volume_create`. A device that holds
/// no volume is `ENVOL_ERR_HEADER_BAD_MAGIC`; two unreadable copies
/// `ENVOL_ERR_HEADER_BOTH_CORRUPT` (or the error both share, e.g.
/// `ENVOL_ERR_HEADER_VERSION`); a device failure `ENVOL_ERR_IO`. On any
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
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        try_status!(unsafe { need_empty(slot) });
        // SAFETY: the caller's contract on each argument.
        let dev = try_status!(unsafe { in_device(dev) });
        // SAFETY: as above.
        let table = try_status!(unsafe { in_kms(kms) });
        // SAFETY: the caller's contract on the table.
        let dev = unsafe { CallbackDevice::new(dev) };
        let v = match Volume::open(dev) {
            Ok(v) => v,
            Err((_, e)) => return e.into(),
        };
        // SAFETY: `slot` is empty (checked above) and writable.
        unsafe {
            wipe_all(slot);
            (&raw mut (*slot).kms).write(table);
            store_detached(slot, v);
        }
        envol_status::ENVOL_OK
    })
}

/// Attaches a detached volume as `principal`: unwraps the data key through
/// the key service (`kms->decrypt_data_key`) with the header's encryption
/// context, verifies the header MAC, and sets up the XTS engine (best
/// backend). The volume is then attached.
///
/// A retired volume is `ENVOL_ERR_VOLUME_RETIRED` (the key service is not
/// asked); a refusal comes back as the key service's status
/// (`ENVOL_ERR_ACCESS_DENIED`, `ENVOL_ERR_KEY_DISABLED`, ...); a header
/// edited since it was written `ENVOL_ERR_HEADER_TAMPERED`; a data key of
/// the wrong size `ENVOL_ERR_KEY_MISMATCH`; NULL `decrypt_data_key`
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
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        try_status!(unsafe { need(slot, State::Detached) });
        // SAFETY: the caller's contract.
        let principal = try_status!(unsafe { in_principal(principal) });
        // SAFETY: a live struct: the table was stored with the volume.
        let table = unsafe { (&raw const (*slot).kms).read() };
        if table.decrypt_data_key.is_none() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        // SAFETY: the contract given with the table at create/open.
        let mut service = unsafe { CallbackKms::new(table) };
        // SAFETY: detached (checked above); the state is empty while the
        // value is out, and set again only when a value is written back.
        let v = unsafe { take_detached(slot) };
        match v.attach(&mut service, principal) {
            Ok(a) => {
                // SAFETY: `slot` is empty and writable.
                unsafe { store_attached(slot, a) };
                envol_status::ENVOL_OK
            }
            Err((v, e)) => {
                // SAFETY: as above: the volume goes back, detached.
                unsafe { store_detached(slot, v) };
                e.into()
            }
        }
    })
}

/// Detaches an attached volume: the XTS engine and every copy of key
/// material in `*vol` are wiped, and so is the bounce buffer; the volume
/// stays open (detached) and can be attached again. Afterwards `*vol` holds
/// the same bytes as a struct freshly opened on the same device with the
/// same tables: nothing of the key is left in it. Detached already: `ENVOL_ERR_VOLUME_DETACHED`; empty:
/// `ENVOL_ERR_NOT_INITIALIZED`.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_detach(vol: *mut envol_volume) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        try_status!(unsafe { need(slot, State::Attached) });
        // SAFETY: attached (checked above).
        unsafe { detach_in_place(slot) };
        envol_status::ENVOL_OK
    })
}

/// Ends the use of `*vol`: an attached volume's key is wiped, and every
/// byte of the struct is zeroed (it is then empty, ready for create or
/// open). Nothing is written to the device. NULL and a misaligned pointer
/// are accepted and ignored.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_close(vol: *mut envol_volume) {
    guard!((), {
        let Ok(slot) = slot_ptr(vol) else {
            return;
        };
        // SAFETY: the caller's struct; the state word says what is live. It
        // is set to empty before the value is dropped in place (so a panic
        // cannot drop it twice), and the bytes are zeroed afterwards.
        unsafe {
            match state_of(slot) {
                State::Attached => {
                    set_state(slot, EMPTY);
                    core::ptr::drop_in_place(
                        (&raw mut (*slot).inner.attached).cast::<AttachedVolume<CallbackDevice>>(),
                    );
                }
                State::Detached => {
                    set_state(slot, EMPTY);
                    core::ptr::drop_in_place(
                        (&raw mut (*slot).inner.detached).cast::<Volume<CallbackDevice>>(),
                    );
                }
                State::Empty => {}
            }
            wipe_all(slot);
        }
    })
}

/// Reads `len` bytes (whole sectors) from data sector `first_sector` on,
/// decrypted, into `buf`. `len` 0 is a no-op.
///
/// A `len` that is not a multiple of the sector size is
/// `ENVOL_ERR_LENGTH`; sectors past the end of the volume
/// `ENVOL_ERR_OUT_OF_RANGE`; `buf` overlapping `*vol` `ENVOL_ERR_OVERLAP`;
/// all with `buf` untouched. A device failure is `ENVOL_ERR_IO`, and then
/// (the one exception to "nothing written on failure") `buf` may hold
/// whatever the device wrote into it. Detached: `ENVOL_ERR_VOLUME_DETACHED`.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`; `buf` NULL or valid for `len`
/// writes.
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
        try_status!(unsafe { need(slot, State::Attached) });
        if buf.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        try_status!(check_span(buf as usize, len));
        if overlaps_struct(slot, buf, len) {
            return envol_status::ENVOL_ERR_OVERLAP;
        }
        // SAFETY: non-NULL, fits a slice, outside `*vol` (checked above), and
        // valid for `len` writes per the contract.
        let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
        // SAFETY: attached (checked above); no other reference into `*vol`.
        let a = unsafe { attached_mut(slot) };
        try_status!(a.read_sectors(first_sector, out));
        envol_status::ENVOL_OK
    })
}

/// Encrypts `len` bytes (whole sectors) from `buf` and writes them at data
/// sector `first_sector` on. `buf` is only read: encryption goes through
/// the bounce buffer inside `*vol`, 64 KiB at a time (so the device sees
/// writes of at most 64 KiB). `len` 0 is a no-op.
///
/// Errors as for `envol_volume_read`; on `ENVOL_ERR_IO` a prefix of the
/// sectors may have been written.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`; `buf` NULL or valid for `len`
/// reads.
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
        try_status!(unsafe { need(slot, State::Attached) });
        if buf.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        try_status!(check_span(buf as usize, len));
        if overlaps_struct(slot, buf, len) {
            return envol_status::ENVOL_ERR_OVERLAP;
        }
        // SAFETY: non-NULL, fits a slice, outside `*vol` (checked above), and
        // valid for `len` reads per the contract.
        let data = unsafe { core::slice::from_raw_parts(buf, len) };
        // SAFETY: attached (checked above); the volume and the bounce buffer
        // are disjoint fields, each referenced once.
        let (a, bounce) = unsafe { (attached_mut(slot), &mut (*slot).bounce) };
        try_status!(a.write_sectors(first_sector, data, bounce));
        envol_status::ENVOL_OK
    })
}

/// Makes written sectors durable (the device's `flush`; a no-op if it has
/// none). Detached: `ENVOL_ERR_VOLUME_DETACHED`.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_flush(vol: *mut envol_volume) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        try_status!(unsafe { need(slot, State::Attached) });
        // SAFETY: attached (checked above); no other reference into `*vol`.
        try_status!(unsafe { attached_mut(slot) }.flush());
        envol_status::ENVOL_OK
    })
}

/// Rewraps the data key of an attached volume under master key
/// `new_key_id`, as `principal`, through the key service's re-encrypt
/// (`kms->re_encrypt`; the plaintext key never leaves the service). The data
/// is not touched. The header update is crash-safe: the copy holding the
/// older header is written first and flushed, then the other; a failure or
/// crash at any byte leaves a volume that opens with the old or the new
/// wrap. On error the volume stays attached and usable.
///
/// NULL `re_encrypt` is `ENVOL_ERR_KMS_UNAVAILABLE` (the service cannot);
/// the key service's refusals come back as its status; a device failure is
/// `ENVOL_ERR_IO`. Detached: `ENVOL_ERR_VOLUME_DETACHED`.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`; strings NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_rewrap(
    vol: *mut envol_volume,
    principal: *const c_char,
    new_key_id: *const c_char,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        try_status!(unsafe { need(slot, State::Attached) });
        // SAFETY: the caller's contract on each argument.
        let principal = try_status!(unsafe { in_principal(principal) });
        // SAFETY: as above.
        let key_id = try_status!(unsafe { in_key_id(new_key_id) });
        // SAFETY: a live struct: the table was stored with the volume.
        let table = unsafe { (&raw const (*slot).kms).read() };
        // SAFETY: the contract given with the table at create/open.
        let mut service = unsafe { CallbackKms::new(table) };
        // SAFETY: attached (checked above); no other reference into `*vol`.
        let a = unsafe { attached_mut(slot) };
        try_status!(a.rewrap(&mut service, principal, key_id));
        envol_status::ENVOL_OK
    })
}

/// Retires an attached volume: the header is marked retired (crash-safely,
/// as for rewrap) and the volume detached, key wiped. Attaching it is
/// refused from then on with `ENVOL_ERR_VOLUME_RETIRED`. On error the
/// volume stays attached. Detached: `ENVOL_ERR_VOLUME_DETACHED`.
///
/// # Safety
/// `vol` NULL or a writable `envol_volume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_retire(vol: *mut envol_volume) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(vol));
        // SAFETY: the caller's contract on `vol`.
        try_status!(unsafe { need(slot, State::Attached) });
        // SAFETY: attached (checked above); no other reference into `*vol`.
        try_status!(unsafe { attached_mut(slot) }.mark_retired());
        // SAFETY: still attached.
        unsafe { detach_in_place(slot) };
        envol_status::ENVOL_OK
    })
}

/// Describes an open volume (attached or detached): its parameters to
/// `*params_out`, the header's sequence number (incremented by every header
/// update) to `*sequence`, the master key id its data key is wrapped under,
/// NUL-terminated, to `key_id_out` (room for `ENVOL_MAX_KEY_ID + 1` bytes),
/// and 1 if attached or 0 if detached to `*attached`. Every output is
/// required; an output overlapping `*vol` is `ENVOL_ERR_OVERLAP`. Empty:
/// `ENVOL_ERR_NOT_INITIALIZED`.
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
        // SAFETY: the caller's contract on `vol`.
        let (h, is_attached) = try_status!(unsafe { live_header(slot) });
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
/// is NULL, misaligned, empty or detached (no engine, no key).
///
/// # Safety
/// `vol` NULL or a readable `envol_volume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_volume_backend(vol: *const envol_volume) -> envol_backend {
    guard!(envol_backend::ENVOL_BACKEND_AUTO, {
        let Ok(slot) = slot_ptr(vol) else {
            return envol_backend::ENVOL_BACKEND_AUTO;
        };
        // SAFETY: the caller's contract on `vol`; the state word says
        // whether `attached` is valid.
        unsafe {
            if state_of(slot) != State::Attached {
                return envol_backend::ENVOL_BACKEND_AUTO;
            }
            let a = &*(&raw const (*slot).inner.attached).cast::<AttachedVolume<CallbackDevice>>();
            a.backend().into()
        }
    })
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
/// whose copy is damaged, stale or different and should be rewritten with
/// the winner's bytes, or -1.
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
        let shell = Header {
            params,
            state: VolumeState::Active,
            sequence: 0,
            blob: &[],
            mac: [0; 32],
        };
        let strings = shell.context_strings();
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

/// The low level's attach: picks the newest good copy of the two header
/// slots, unwraps its data key as `principal` through the key service
/// (`kms->decrypt_data_key`) with the header's encryption context,
/// verifies the header MAC, and initialises `ctx` with the key (best
/// backend). The plaintext key never reaches the caller, and every buffer
/// that held it is wiped. On any error `ctx` is left as it was.
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
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
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
        let h = try_status!(header::pick(a, b)).header;
        if h.state == VolumeState::Retired {
            return envol_status::ENVOL_ERR_VOLUME_RETIRED;
        }
        let strings = h.context_strings();
        // SAFETY: the caller's contract on the table.
        let mut service = unsafe { CallbackKms::new(table) };
        let dek = try_status!(service.decrypt_data_key(principal, h.blob, &strings.context()));
        if dek.size() != h.params.suite.key_size() {
            return envol_status::ENVOL_ERR_KEY_MISMATCH;
        }
        try_status!(h.verify_mac(dek.as_bytes()));
        // SAFETY: `ctx` was checked above and is writable per the contract.
        try_status!(unsafe { init_best(ctx, dek.as_bytes()) });
        // `dek` is wiped as it drops here.
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

/// Bytes of `envol_volume` the library uses (tests report it).
#[cfg(test)]
pub(crate) fn used_size() -> usize {
    size_of::<Slot>()
}
