//! The sector-engine part of the C ABI: `envol_xts_*` and `envol_backend_*`.

use core::ffi::{c_char, c_int};
use core::mem::{MaybeUninit, align_of, size_of};

use envol::xts::{Backend, Xts};
use zeroize::Zeroize;

use crate::boundary::guard_secret;
use crate::boundary::{
    BackendChoice, check_span, envol_backend, envol_backend_arg, envol_status, guard, in_slice,
    partial_overlap, ranges_overlap, try_status,
};

/// Size in bytes of [`envol_xts`]; fixed for this major version.
pub const ENVOL_XTS_SIZE: usize = 2048;
/// Alignment in bytes of [`envol_xts`].
pub const ENVOL_XTS_ALIGN: usize = 64;

/// A caller-allocated XTS context (`ENVOL_XTS_SIZE` bytes, 64-byte aligned).
///
/// Initialise with `envol_xts_init`, wipe with `envol_xts_wipe`. The bytes
/// are opaque; a context must not be copied while initialised.
#[repr(C, align(64))]
pub struct envol_xts {
    opaque: [u8; ENVOL_XTS_SIZE],
}

/// "envolXTS" as a little-endian u64: the state word of a live context.
const LIVE: u64 = u64::from_le_bytes(*b"envolXTS");

/// What the library keeps inside `envol_xts`.
#[repr(C)]
struct Slot {
    state: u64,
    xts: MaybeUninit<Xts>,
}

const _: () = assert!(size_of::<envol_xts>() == ENVOL_XTS_SIZE);
const _: () = assert!(align_of::<envol_xts>() == ENVOL_XTS_ALIGN);
const _: () = assert!(size_of::<Slot>() <= ENVOL_XTS_SIZE);
const _: () = assert!(align_of::<Slot>() <= ENVOL_XTS_ALIGN);

/// Checks `ctx` for NULL and alignment.
fn slot_ptr(ctx: *const envol_xts) -> Result<*mut Slot, envol_status> {
    if ctx.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    if !(ctx as usize).is_multiple_of(ENVOL_XTS_ALIGN) {
        return Err(envol_status::ENVOL_ERR_ALIGNMENT);
    }
    Ok(ctx.cast_mut().cast())
}

/// The live engine in `ctx`.
///
/// # Safety
/// `ctx`, if not NULL, points to `ENVOL_XTS_SIZE` readable bytes that are not
/// written during `'a`.
unsafe fn live<'a>(ctx: *const envol_xts) -> Result<&'a Xts, envol_status> {
    let slot = slot_ptr(ctx)?;
    // SAFETY: aligned, non-NULL, inside the caller's `envol_xts`. The state
    // word is read volatile because C may hand us never-written memory.
    let state = unsafe { core::ptr::read_volatile(&raw const (*slot).state) };
    if state != LIVE {
        return Err(envol_status::ENVOL_ERR_NOT_INITIALIZED);
    }
    // SAFETY: only `store` writes LIVE, right after writing a valid `Xts`,
    // and `envol_xts_wipe` clears it before the `Xts` is dropped.
    Ok(unsafe { (*slot).xts.assume_init_ref() })
}

/// Zeroes every byte of the context.
///
/// # Safety
/// `slot` points to `ENVOL_XTS_SIZE` writable bytes.
unsafe fn zero_all(slot: *mut Slot) {
    // SAFETY: the whole context is ours to write; `envol_xts` is plain bytes.
    let bytes = unsafe { &mut *slot.cast::<[u8; ENVOL_XTS_SIZE]>() };
    bytes.zeroize();
}

/// Replaces whatever `slot` holds with `xts`.
///
/// # Safety
/// `slot` points to an aligned `envol_xts` owned by the caller.
unsafe fn store(slot: *mut Slot, xts: Xts) {
    // SAFETY: the caller's context; a live engine is dropped (and so wiped)
    // before the bytes are cleared and rewritten.
    unsafe {
        drop_if_live(slot);
        zero_all(slot);
        (&raw mut (*slot).xts).write(MaybeUninit::new(xts));
        core::ptr::write_volatile(&raw mut (*slot).state, LIVE);
    }
}

/// Drops the engine if the state word says there is one.
///
/// # Safety
/// As for [`store`].
unsafe fn drop_if_live(slot: *mut Slot) {
    // SAFETY: see `live`.
    unsafe {
        if core::ptr::read_volatile(&raw const (*slot).state) == LIVE {
            core::ptr::write_volatile(&raw mut (*slot).state, 0);
            (*slot).xts.assume_init_drop();
        }
    }
}

/// `sizeof(envol_xts)` of the built library; compare with `ENVOL_XTS_SIZE`.
#[unsafe(no_mangle)]
pub extern "C" fn envol_xts_size() -> usize {
    ENVOL_XTS_SIZE
}

/// Initialises `ctx` with an XTS key (key1 ‖ key2, 32 or 64 bytes) on the best
/// available backend. On error `ctx` is left as it was.
///
/// # Safety
/// `ctx` is NULL or points to a writable `envol_xts`; `key` is NULL or valid
/// for `key_len` reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_init(
    ctx: *mut envol_xts,
    key: *const u8,
    key_len: usize,
) -> envol_status {
    // SAFETY: forwarded contract.
    unsafe {
        envol_xts_init_with_backend(
            ctx,
            key,
            key_len,
            envol_backend_arg(envol_backend::ENVOL_BACKEND_AUTO as u32),
        )
    }
}

/// Initialises `ctx` on a given backend (`ENVOL_BACKEND_AUTO` for the best).
/// An unavailable backend gives `ENVOL_ERR_BACKEND_UNAVAILABLE`, an unknown
/// number `ENVOL_ERR_INVALID_ARGUMENT`. On error `ctx` is left as it was.
///
/// # Safety
/// As for [`envol_xts_init`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_init_with_backend(
    ctx: *mut envol_xts,
    key: *const u8,
    key_len: usize,
    backend: envol_backend_arg,
) -> envol_status {
    guard_secret!(envol_status::ENVOL_ERR_INTERNAL, {
        let slot = try_status!(slot_ptr(ctx));
        // SAFETY: the caller's contract on `key`.
        let key = try_status!(unsafe { in_slice(key, key_len) });
        let backend = match backend.choice() {
            Some(BackendChoice::Auto) => Backend::detect(),
            Some(BackendChoice::Fixed(b)) => b,
            None => return envol_status::ENVOL_ERR_INVALID_ARGUMENT,
        };
        // SAFETY: `slot` is the caller's aligned, writable context.
        try_status!(unsafe { init_slot(slot, key, backend) });
        envol_status::ENVOL_OK
    })
}

/// Builds an engine for `key` on `backend` and stores it in `slot`; on error
/// `slot` is left as it was.
///
/// # Safety
/// As for [`store`].
unsafe fn init_slot(slot: *mut Slot, key: &[u8], backend: Backend) -> Result<(), envol_status> {
    let xts = Xts::with_backend(key, backend)?;
    // SAFETY: forwarded contract.
    unsafe { store(slot, xts) };
    Ok(())
}

/// Checks an `envol_xts` pointer (NULL, alignment) before anything else is
/// done for a call that will initialise it.
pub(crate) fn check_ctx(ctx: *mut envol_xts) -> Result<(), envol_status> {
    slot_ptr(ctx).map(|_| ())
}

/// Initialises `ctx` with `key` on the best available backend, as
/// `envol_xts_init` does; on error `ctx` is left as it was.
///
/// # Safety
/// `ctx` is NULL or points to a writable `envol_xts`.
pub(crate) unsafe fn init_best(ctx: *mut envol_xts, key: &[u8]) -> Result<(), envol_status> {
    let slot = slot_ptr(ctx)?;
    // SAFETY: `slot` is the caller's aligned, writable context.
    unsafe { init_slot(slot, key, Backend::detect()) }
}

/// Stores a ready engine into `ctx`, as the init calls do.
///
/// # Safety
/// `ctx` is NULL or points to a writable `envol_xts`.
pub(crate) unsafe fn store_engine(ctx: *mut envol_xts, xts: Xts) -> Result<(), envol_status> {
    let slot = slot_ptr(ctx)?;
    // SAFETY: `slot` is the caller's aligned, writable context.
    unsafe { store(slot, xts) };
    Ok(())
}

/// Direction of a data call.
#[derive(Clone, Copy)]
enum Op {
    EncryptSectors(u64, usize),
    DecryptSectors(u64, usize),
    EncryptUnit([u8; 16]),
    DecryptUnit([u8; 16]),
}

/// Who runs a sector run: the calling thread, or a pool (hosted builds).
#[derive(Clone, Copy)]
enum Runner<'a> {
    Caller,
    #[cfg(feature = "std")]
    Pool(&'a envol::xts::XtsPool),
    #[cfg(not(feature = "std"))]
    #[allow(dead_code)]
    Never(core::convert::Infallible, core::marker::PhantomData<&'a ()>),
}

impl Runner<'_> {
    /// A checked run of sectors, in place (`input` None) or out of place.
    fn sectors(
        self,
        xts: &Xts,
        encrypt: bool,
        first: u64,
        size: usize,
        input: Option<&[u8]>,
        out: &mut [u8],
    ) -> Result<(), envol::xts::Error> {
        match (self, input, encrypt) {
            #[cfg(feature = "std")]
            (Runner::Pool(p), None, true) => p.encrypt_sectors(xts, first, size, out),
            #[cfg(feature = "std")]
            (Runner::Pool(p), None, false) => p.decrypt_sectors(xts, first, size, out),
            #[cfg(feature = "std")]
            (Runner::Pool(p), Some(i), true) => p.encrypt_sectors_to(xts, first, size, i, out),
            #[cfg(feature = "std")]
            (Runner::Pool(p), Some(i), false) => p.decrypt_sectors_to(xts, first, size, i, out),
            (_, None, true) => xts.encrypt_sectors(first, size, out),
            (_, None, false) => xts.decrypt_sectors(first, size, out),
            (_, Some(i), true) => xts.encrypt_sectors_to(first, size, i, out),
            (_, Some(i), false) => xts.decrypt_sectors_to(first, size, i, out),
        }
    }
}

/// Shared body of the data calls: checks everything before touching `out`,
/// then runs in place (`in == out`) or out of place.
///
/// # Safety
/// `ctx` as for [`live`]; `input` NULL or valid for `len` reads; `out` NULL or
/// valid for `len` writes.
unsafe fn data_call(
    ctx: *const envol_xts,
    op: Op,
    input: *const u8,
    out: *mut u8,
    len: usize,
) -> envol_status {
    // SAFETY: forwarded contract.
    unsafe { run_call(Runner::Caller, ctx, op, input, out, len) }
}

/// [`data_call`] with the sector runs on `runner`.
///
/// # Safety
/// As for [`data_call`].
unsafe fn run_call(
    runner: Runner<'_>,
    ctx: *const envol_xts,
    op: Op,
    input: *const u8,
    out: *mut u8,
    len: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: forwarded contract.
        let xts = try_status!(unsafe { live(ctx) });
        if input.is_null() || out.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        try_status!(check_span(input as usize, len));
        try_status!(check_span(out as usize, len));
        match op {
            Op::EncryptSectors(first, size) | Op::DecryptSectors(first, size) => {
                try_status!(Xts::check_sectors(first, size, len));
            }
            Op::EncryptUnit(_) | Op::DecryptUnit(_) => try_status!(Xts::check_unit(len)),
        }
        if partial_overlap(input as usize, out as usize, len) {
            return envol_status::ENVOL_ERR_OVERLAP;
        }
        // A buffer inside the context would be read or written while the
        // engine runs on the key schedule (and backend) stored there.
        let c = ctx as usize;
        if ranges_overlap(c, ENVOL_XTS_SIZE, input as usize, len)
            || ranges_overlap(c, ENVOL_XTS_SIZE, out as usize, len)
        {
            return envol_status::ENVOL_ERR_OVERLAP;
        }
        let result = if core::ptr::eq(input, out) {
            // SAFETY: `out` is valid for `len` reads and writes (it is also
            // the input) and the span fits a slice.
            let buf = unsafe { core::slice::from_raw_parts_mut(out, len) };
            match op {
                Op::EncryptSectors(f, s) => runner.sectors(xts, true, f, s, None, buf),
                Op::DecryptSectors(f, s) => runner.sectors(xts, false, f, s, None, buf),
                Op::EncryptUnit(t) => xts.encrypt_unit(&t, buf),
                Op::DecryptUnit(t) => xts.decrypt_unit(&t, buf),
            }
        } else {
            // SAFETY: disjoint (checked above) and valid per the contract.
            let (src, dst) = unsafe {
                (
                    core::slice::from_raw_parts(input, len),
                    core::slice::from_raw_parts_mut(out, len),
                )
            };
            match op {
                Op::EncryptSectors(f, s) => runner.sectors(xts, true, f, s, Some(src), dst),
                Op::DecryptSectors(f, s) => runner.sectors(xts, false, f, s, Some(src), dst),
                Op::EncryptUnit(t) => xts.encrypt_unit_to(&t, src, dst),
                Op::DecryptUnit(t) => xts.decrypt_unit_to(&t, src, dst),
            }
        };
        try_status!(result);
        envol_status::ENVOL_OK
    })
}

/// Encrypts `len / sector_size` consecutive sectors starting at
/// `first_sector` (tweak = sector number, 128-bit little-endian). `len` must
/// be a multiple of `sector_size`, itself a multiple of 16 in 16..=2^24.
/// `in == out` works in place; a partial overlap is `ENVOL_ERR_OVERLAP`, and
/// so is a buffer overlapping `*ctx`.
///
/// # Safety
/// `ctx` NULL or a readable `envol_xts`; `in` NULL or valid for `len` reads;
/// `out` NULL or valid for `len` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_encrypt_sectors(
    ctx: *const envol_xts,
    first_sector: u64,
    sector_size: usize,
    r#in: *const u8,
    out: *mut u8,
    len: usize,
) -> envol_status {
    // SAFETY: forwarded contract.
    unsafe {
        data_call(
            ctx,
            Op::EncryptSectors(first_sector, sector_size),
            r#in,
            out,
            len,
        )
    }
}

/// Decrypts a run of sectors; see `envol_xts_encrypt_sectors`.
///
/// # Safety
/// As for [`envol_xts_encrypt_sectors`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_decrypt_sectors(
    ctx: *const envol_xts,
    first_sector: u64,
    sector_size: usize,
    r#in: *const u8,
    out: *mut u8,
    len: usize,
) -> envol_status {
    // SAFETY: forwarded contract.
    unsafe {
        data_call(
            ctx,
            Op::DecryptSectors(first_sector, sector_size),
            r#in,
            out,
            len,
        )
    }
}

/// A pool of worker threads that spreads long sector runs over cores
/// (hosted builds). Create with `envol_xts_pool_new`, free with
/// `envol_xts_pool_free`. A pool of `threads` has `threads - 1` workers; the
/// calling thread takes one share of each run and returns when the run is
/// done. One pool serves any number of contexts, and calls from several
/// threads at once. A share is at least `ENVOL_XTS_POOL_MIN_PART` bytes, so
/// shorter runs stay on the calling thread.
#[cfg(feature = "std")]
pub struct envol_xts_pool {
    pool: envol::xts::XtsPool,
}

/// Below this many bytes per share a pool keeps a run on fewer threads.
#[cfg(feature = "std")]
pub const ENVOL_XTS_POOL_MIN_PART: usize = 131_072;
#[cfg(feature = "std")]
const _: () = assert!(ENVOL_XTS_POOL_MIN_PART == envol::xts::MIN_BYTES_PER_PART);

/// Most threads a pool may have.
#[cfg(feature = "std")]
pub const ENVOL_XTS_POOL_MAX_THREADS: usize = 1024;

/// Creates a pool running each call on up to `threads` threads (1 ..=
/// `ENVOL_XTS_POOL_MAX_THREADS`, the caller included) and stores its handle
/// in `*out`. `ENVOL_ERR_INVALID_ARGUMENT` for a thread count out of range,
/// `ENVOL_ERR_IO` if the system refuses to create a thread.
///
/// # Safety
/// `out` NULL or valid for one pointer write.
#[cfg(feature = "std")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_pool_new(
    threads: usize,
    out: *mut *mut envol_xts_pool,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        if out.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        if !(1..=ENVOL_XTS_POOL_MAX_THREADS).contains(&threads) {
            return envol_status::ENVOL_ERR_INVALID_ARGUMENT;
        }
        let Ok(pool) = envol::xts::XtsPool::new(threads) else {
            return envol_status::ENVOL_ERR_IO;
        };
        let h = std::boxed::Box::into_raw(std::boxed::Box::new(envol_xts_pool { pool }));
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(h) };
        envol_status::ENVOL_OK
    })
}

/// Frees a pool, joining its threads. NULL is accepted and ignored. No call
/// on the pool may be running.
///
/// # Safety
/// `pool` NULL or a handle from `envol_xts_pool_new` not freed before and not
/// used after.
#[cfg(feature = "std")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_pool_free(pool: *mut envol_xts_pool) {
    guard!((), {
        if !pool.is_null() {
            // SAFETY: made by `Box::into_raw` in `envol_xts_pool_new`.
            drop(unsafe { std::boxed::Box::from_raw(pool) });
        }
    })
}

/// [`run_call`] on the pool behind a handle.
///
/// # Safety
/// `pool` NULL or a live handle from `envol_xts_pool_new`; the rest as for
/// [`data_call`].
#[cfg(feature = "std")]
unsafe fn pool_call(
    pool: *const envol_xts_pool,
    ctx: *const envol_xts,
    op: Op,
    input: *const u8,
    out: *mut u8,
    len: usize,
) -> envol_status {
    // SAFETY: per the contract; the pool is `Sync`, shared use is fine.
    let Some(p) = (unsafe { pool.as_ref() }) else {
        return envol_status::ENVOL_ERR_NULL_POINTER;
    };
    // SAFETY: forwarded contract; `run_call` guards against unwinding.
    unsafe { run_call(Runner::Pool(&p.pool), ctx, op, input, out, len) }
}

/// `envol_xts_encrypt_sectors` spread over `pool`: same arguments, checks,
/// errors and bytes; nothing is written on error.
///
/// # Safety
/// `pool` NULL or a live pool; the rest as for `envol_xts_encrypt_sectors`.
#[cfg(feature = "std")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_pool_encrypt_sectors(
    pool: *const envol_xts_pool,
    ctx: *const envol_xts,
    first_sector: u64,
    sector_size: usize,
    r#in: *const u8,
    out: *mut u8,
    len: usize,
) -> envol_status {
    let op = Op::EncryptSectors(first_sector, sector_size);
    // SAFETY: forwarded contract.
    unsafe { pool_call(pool, ctx, op, r#in, out, len) }
}

/// `envol_xts_decrypt_sectors` spread over `pool`; see
/// `envol_xts_pool_encrypt_sectors`.
///
/// # Safety
/// As for [`envol_xts_pool_encrypt_sectors`].
#[cfg(feature = "std")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_pool_decrypt_sectors(
    pool: *const envol_xts_pool,
    ctx: *const envol_xts,
    first_sector: u64,
    sector_size: usize,
    r#in: *const u8,
    out: *mut u8,
    len: usize,
) -> envol_status {
    let op = Op::DecryptSectors(first_sector, sector_size);
    // SAFETY: forwarded contract.
    unsafe { pool_call(pool, ctx, op, r#in, out, len) }
}

/// Reads the 16-byte tweak, or reports NULL.
///
/// # Safety
/// `tweak` NULL or valid for 16 reads.
unsafe fn read_tweak(tweak: *const u8) -> Result<[u8; 16], envol_status> {
    if tweak.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    let mut t = [0u8; 16];
    // SAFETY: non-NULL and valid for 16 reads per the contract.
    unsafe { core::ptr::copy_nonoverlapping(tweak, t.as_mut_ptr(), 16) };
    Ok(t)
}

/// Encrypts one IEEE 1619 data unit of `len` bytes (16..=2^24, ciphertext
/// stealing when not a multiple of 16) under an arbitrary 16-byte tweak.
/// Buffers as for `envol_xts_encrypt_sectors`.
///
/// # Safety
/// `ctx` NULL or a readable `envol_xts`; `tweak` NULL or valid for 16 reads;
/// `in` NULL or valid for `len` reads; `out` NULL or valid for `len` writes.
///
/// cbindgen:ptrs-as-arrays=[[tweak;16]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_encrypt_unit(
    ctx: *const envol_xts,
    tweak: *const u8,
    r#in: *const u8,
    out: *mut u8,
    len: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: forwarded contract.
        let t = try_status!(unsafe { read_tweak(tweak) });
        // SAFETY: forwarded contract.
        unsafe { data_call(ctx, Op::EncryptUnit(t), r#in, out, len) }
    })
}

/// Decrypts one data unit; see `envol_xts_encrypt_unit`.
///
/// # Safety
/// As for [`envol_xts_encrypt_unit`].
///
/// cbindgen:ptrs-as-arrays=[[tweak;16]]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_decrypt_unit(
    ctx: *const envol_xts,
    tweak: *const u8,
    r#in: *const u8,
    out: *mut u8,
    len: usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: forwarded contract.
        let t = try_status!(unsafe { read_tweak(tweak) });
        // SAFETY: forwarded contract.
        unsafe { data_call(ctx, Op::DecryptUnit(t), r#in, out, len) }
    })
}

/// Wipes the key material and zeroes every byte of `ctx`, which then
/// refuses use until initialised again. NULL is accepted and ignored, and so
/// is a misaligned pointer (nothing is written through it).
///
/// # Safety
/// `ctx` NULL or a writable `envol_xts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_wipe(ctx: *mut envol_xts) {
    guard_secret!((), {
        if let Ok(slot) = slot_ptr(ctx) {
            // SAFETY: the caller's aligned, writable context.
            unsafe {
                drop_if_live(slot);
                zero_all(slot);
            }
        }
    })
}

/// The backend `ctx` runs on, or `ENVOL_BACKEND_AUTO` if `ctx` is NULL,
/// misaligned, not initialised or wiped.
///
/// # Safety
/// `ctx` NULL or a readable `envol_xts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_xts_backend(ctx: *const envol_xts) -> envol_backend {
    guard!(envol_backend::ENVOL_BACKEND_AUTO, {
        // SAFETY: forwarded contract.
        match unsafe { live(ctx) } {
            Ok(x) => x.backend().into(),
            Err(_) => envol_backend::ENVOL_BACKEND_AUTO,
        }
    })
}

/// The backend `ENVOL_BACKEND_AUTO` picks on this CPU.
#[unsafe(no_mangle)]
pub extern "C" fn envol_backend_detect() -> envol_backend {
    guard!(envol_backend::ENVOL_BACKEND_SOFT, {
        Backend::detect().into()
    })
}

/// 1 if `backend` can run here (`ENVOL_BACKEND_AUTO` always can), else 0.
#[unsafe(no_mangle)]
pub extern "C" fn envol_backend_available(backend: envol_backend_arg) -> c_int {
    guard!(0, {
        match backend.choice() {
            Some(BackendChoice::Auto) => 1,
            Some(BackendChoice::Fixed(b)) => c_int::from(b.is_available()),
            None => 0,
        }
    })
}

/// "auto", "soft", "aesni", "vaes256", "vaes512", "armv8", or "unknown".
#[unsafe(no_mangle)]
pub extern "C" fn envol_backend_name(backend: envol_backend_arg) -> *const c_char {
    match backend.choice() {
        Some(BackendChoice::Auto) => c"auto".as_ptr(),
        Some(BackendChoice::Fixed(b)) => match b {
            Backend::Soft => c"soft".as_ptr(),
            Backend::Aesni => c"aesni".as_ptr(),
            Backend::Vaes256 => c"vaes256".as_ptr(),
            Backend::Vaes512 => c"vaes512".as_ptr(),
            Backend::Armv8 => c"armv8".as_ptr(),
        },
        None => c"unknown".as_ptr(),
    }
}
