//! The XTS-AES sector engine (IEEE 1619-2007, NIST SP 800-38E).
//!
//! [`Xts`] owns an XTS-AES-128 or XTS-AES-256 key (key1 ‖ key2) expanded for
//! one backend, chosen once at key setup. It encrypts single data units under
//! an arbitrary 128-bit tweak (ciphertext stealing for lengths that are not a
//! multiple of 16) and runs of consecutive sectors whose tweak is the sector
//! number as a 128-bit little-endian integer (dm-crypt `aes-xts-plain64`).
//!
//! The engine never allocates and never panics on any input: every length,
//! sector size and sector number is checked and refused with an [`Error`].

mod backend;
#[cfg(feature = "std")]
mod parallel;

#[cfg(feature = "std")]
pub use parallel::MIN_BYTES_PER_THREAD;
#[cfg(feature = "pool")]
pub use parallel::{MIN_BYTES_PER_PART, XtsPool};

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

pub use backend::Backend;
use backend::Engine;

/// Size of an AES block and of an XTS tweak, in bytes.
pub const BLOCK_SIZE: usize = 16;
/// Smallest data unit XTS accepts, in bytes.
pub const MIN_UNIT: usize = 16;
/// Largest data unit (and sector) envol accepts, in bytes: 2^24.
///
/// IEEE 1619 allows up to 2^20 blocks per data unit; 2^24 bytes is 2^20 blocks.
pub const MAX_UNIT: usize = 1 << 24;

/// How many sectors have their initial tweak encrypted together.
const TWEAK_BATCH: usize = 16;

/// Why the engine refused a call. No variant carries key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The key is neither 32 bytes (XTS-AES-128) nor 64 bytes (XTS-AES-256).
    KeyLength,
    /// key1 and key2 are equal; IEEE 1619-2018 and SP 800-38E forbid it.
    WeakKey,
    /// The sector size is not a multiple of 16 in 16..=2^24.
    SectorSize,
    /// A data unit is shorter than 16 or longer than 2^24 bytes, a run is not
    /// a whole number of sectors, or input and output lengths differ.
    Length,
    /// The run of sectors goes past sector number 2^64 - 1.
    SectorOverflow,
    /// The requested backend is not available on this CPU or build.
    BackendUnavailable,
}

impl Error {
    /// The C ABI's name for this error (`envol.h`), so the library, the C
    /// ABI and the command line spell an outcome the same way.
    pub fn status_name(self) -> &'static str {
        match self {
            Error::KeyLength => "ENVOL_ERR_KEY_LENGTH",
            Error::WeakKey => "ENVOL_ERR_WEAK_KEY",
            Error::SectorSize => "ENVOL_ERR_SECTOR_SIZE",
            Error::Length => "ENVOL_ERR_LENGTH",
            Error::SectorOverflow => "ENVOL_ERR_SECTOR_OVERFLOW",
            Error::BackendUnavailable => "ENVOL_ERR_BACKEND_UNAVAILABLE",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::KeyLength => "XTS key must be 32 or 64 bytes",
            Error::WeakKey => "XTS key halves are equal",
            Error::SectorSize => "sector size must be a multiple of 16 in 16..=2^24",
            Error::Length => "data length is not valid for this operation",
            Error::SectorOverflow => "sector run goes past sector 2^64 - 1",
            Error::BackendUnavailable => "backend not available on this CPU or build",
        })
    }
}

impl core::error::Error for Error {}

/// The AES key size of an XTS key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySize {
    /// XTS-AES-128: a 32-byte key, two AES-128 keys.
    Aes128,
    /// XTS-AES-256: a 64-byte key, two AES-256 keys.
    Aes256,
}

impl KeySize {
    /// Length in bytes of the whole XTS key (key1 ‖ key2).
    pub const fn key_len(self) -> usize {
        match self {
            KeySize::Aes128 => 32,
            KeySize::Aes256 => 64,
        }
    }

    /// Length in bytes of one AES key.
    pub const fn half_len(self) -> usize {
        self.key_len() / 2
    }

    /// The key size for a whole XTS key of `len` bytes.
    pub const fn from_key_len(len: usize) -> Result<Self, Error> {
        match len {
            32 => Ok(KeySize::Aes128),
            64 => Ok(KeySize::Aes256),
            _ => Err(Error::KeyLength),
        }
    }
}

/// Direction of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Encrypt,
    Decrypt,
}

/// An XTS-AES key expanded for one backend.
///
/// Key bytes and round keys are zeroized when the value is dropped; `Debug`
/// shows only the backend and key size.
pub struct Xts {
    engine: Engine,
}

impl fmt::Debug for Xts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Xts")
            .field("backend", &self.backend())
            .field("key_size", &self.key_size())
            .finish_non_exhaustive()
    }
}

impl Xts {
    /// Sets up `key` (key1 ‖ key2, 32 or 64 bytes) on the best backend this CPU has.
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        Self::with_backend(key, Backend::detect())
    }

    /// Sets up `key` on `backend`, which must be available.
    ///
    /// Forcing [`Backend::Soft`] always works. On a CPU with AES instructions
    /// the `aes` crate behind `Soft` still uses them unless the build sets
    /// `--cfg aes_backend="soft"`; the bytes are the same either way.
    pub fn with_backend(key: &[u8], backend: Backend) -> Result<Self, Error> {
        let size = KeySize::from_key_len(key.len())?;
        let (key1, key2) = key.split_at(size.half_len());
        if bool::from(key1.ct_eq(key2)) {
            return Err(Error::WeakKey);
        }
        if !backend.is_available() {
            return Err(Error::BackendUnavailable);
        }
        Ok(Xts {
            engine: Engine::new(backend, key1, key2),
        })
    }

    /// The backend this key was set up for.
    pub fn backend(&self) -> Backend {
        self.engine.backend()
    }

    /// The AES key size.
    pub fn key_size(&self) -> KeySize {
        self.engine.key_size()
    }

    /// Encrypts one data unit in place under `tweak` (16..=2^24 bytes).
    pub fn encrypt_unit(&self, tweak: &[u8; 16], buf: &mut [u8]) -> Result<(), Error> {
        let len = buf.len();
        let p = buf.as_mut_ptr();
        // SAFETY: `p` is valid for `len` reads and writes; source and
        // destination are the same buffer, which the kernels allow.
        unsafe { self.unit(Dir::Encrypt, tweak, p, p, len) }
    }

    /// Decrypts one data unit in place under `tweak` (16..=2^24 bytes).
    pub fn decrypt_unit(&self, tweak: &[u8; 16], buf: &mut [u8]) -> Result<(), Error> {
        let len = buf.len();
        let p = buf.as_mut_ptr();
        // SAFETY: as in `encrypt_unit`.
        unsafe { self.unit(Dir::Decrypt, tweak, p, p, len) }
    }

    /// Encrypts one data unit from `input` into `output` (equal lengths).
    pub fn encrypt_unit_to(
        &self,
        tweak: &[u8; 16],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), Error> {
        if input.len() != output.len() {
            return Err(Error::Length);
        }
        // SAFETY: `input` is valid for reads and `output` for writes of
        // `input.len()` bytes; a shared and a unique borrow cannot overlap.
        unsafe {
            self.unit(
                Dir::Encrypt,
                tweak,
                input.as_ptr(),
                output.as_mut_ptr(),
                input.len(),
            )
        }
    }

    /// Decrypts one data unit from `input` into `output` (equal lengths).
    pub fn decrypt_unit_to(
        &self,
        tweak: &[u8; 16],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), Error> {
        if input.len() != output.len() {
            return Err(Error::Length);
        }
        // SAFETY: as in `encrypt_unit_to`.
        unsafe {
            self.unit(
                Dir::Decrypt,
                tweak,
                input.as_ptr(),
                output.as_mut_ptr(),
                input.len(),
            )
        }
    }

    /// Encrypts a run of whole sectors in place; the first is `first_sector`.
    pub fn encrypt_sectors(
        &self,
        first_sector: u64,
        sector_size: usize,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        let len = buf.len();
        let p = buf.as_mut_ptr();
        // SAFETY: `p` is valid for `len` reads and writes; in place is allowed.
        unsafe { self.sectors(Dir::Encrypt, first_sector, sector_size, p, p, len) }
    }

    /// Decrypts a run of whole sectors in place; the first is `first_sector`.
    pub fn decrypt_sectors(
        &self,
        first_sector: u64,
        sector_size: usize,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        let len = buf.len();
        let p = buf.as_mut_ptr();
        // SAFETY: as in `encrypt_sectors`.
        unsafe { self.sectors(Dir::Decrypt, first_sector, sector_size, p, p, len) }
    }

    /// Encrypts a run of whole sectors from `input` into `output`.
    pub fn encrypt_sectors_to(
        &self,
        first_sector: u64,
        sector_size: usize,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), Error> {
        if input.len() != output.len() {
            return Err(Error::Length);
        }
        // SAFETY: disjoint borrows valid for `input.len()` bytes each.
        unsafe {
            self.sectors(
                Dir::Encrypt,
                first_sector,
                sector_size,
                input.as_ptr(),
                output.as_mut_ptr(),
                input.len(),
            )
        }
    }

    /// Decrypts a run of whole sectors from `input` into `output`.
    pub fn decrypt_sectors_to(
        &self,
        first_sector: u64,
        sector_size: usize,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), Error> {
        if input.len() != output.len() {
            return Err(Error::Length);
        }
        // SAFETY: disjoint borrows valid for `input.len()` bytes each.
        unsafe {
            self.sectors(
                Dir::Decrypt,
                first_sector,
                sector_size,
                input.as_ptr(),
                output.as_mut_ptr(),
                input.len(),
            )
        }
    }

    /// Checks the arguments of a sector run without touching any data.
    ///
    /// Returns the number of sectors. The C ABI uses this to refuse a call
    /// before it looks at its buffers.
    pub fn check_sectors(
        first_sector: u64,
        sector_size: usize,
        len: usize,
    ) -> Result<usize, Error> {
        if !(MIN_UNIT..=MAX_UNIT).contains(&sector_size) || !sector_size.is_multiple_of(BLOCK_SIZE)
        {
            return Err(Error::SectorSize);
        }
        if !len.is_multiple_of(sector_size) {
            return Err(Error::Length);
        }
        let count = len / sector_size;
        if count > 0 {
            let extra = u64::try_from(count - 1).map_err(|_| Error::SectorOverflow)?;
            first_sector
                .checked_add(extra)
                .ok_or(Error::SectorOverflow)?;
        }
        Ok(count)
    }

    /// Checks the length of one data unit.
    pub fn check_unit(len: usize) -> Result<(), Error> {
        if (MIN_UNIT..=MAX_UNIT).contains(&len) {
            Ok(())
        } else {
            Err(Error::Length)
        }
    }

    /// One data unit: `len` bytes from `src` to `dst`.
    ///
    /// # Safety
    /// `src` must be valid for `len` reads and `dst` for `len` writes, and the
    /// two ranges are either the same or disjoint.
    unsafe fn unit(
        &self,
        dir: Dir,
        tweak: &[u8; 16],
        src: *const u8,
        dst: *mut u8,
        len: usize,
    ) -> Result<(), Error> {
        Self::check_unit(len)?;
        let mut t = *tweak;
        self.engine.encrypt_tweaks(core::slice::from_mut(&mut t));
        let full = len / BLOCK_SIZE;
        let tail = len % BLOCK_SIZE;
        if tail == 0 {
            // SAFETY: `full * 16 == len`; the caller's contract covers it.
            unsafe { self.engine.blocks(dir, &mut t, src, dst, full) };
        } else {
            // SAFETY: `full >= 1` because `len >= 16`; forwarded contract.
            unsafe { self.cts(dir, &mut t, src, dst, full, tail) };
        }
        t.zeroize();
        Ok(())
    }

    /// Ciphertext stealing for a unit of `full` whole blocks and `tail` bytes
    /// (IEEE 1619-2007 5.3.2 and 5.4.2), `full >= 1`, `0 < tail < 16`.
    ///
    /// # Safety
    /// As for [`Xts::unit`] with `len = 16 * full + tail`.
    unsafe fn cts(
        &self,
        dir: Dir,
        t: &mut [u8; 16],
        src: *const u8,
        dst: *mut u8,
        full: usize,
        tail: usize,
    ) {
        let head = full - 1;
        let last_full = head * BLOCK_SIZE;
        let partial = full * BLOCK_SIZE;
        // SAFETY: the first `head` blocks lie inside the unit.
        unsafe { self.engine.blocks(dir, t, src, dst, head) };

        // Read everything still needed from the source before writing, so that
        // in-place operation is correct.
        let mut last = [0u8; 16];
        let mut stolen = [0u8; 16];
        // SAFETY: bytes `last_full..last_full + 16` and `partial..partial + tail`
        // lie inside the `16 * full + tail`-byte source.
        unsafe {
            core::ptr::copy_nonoverlapping(src.add(last_full), last.as_mut_ptr(), BLOCK_SIZE);
            core::ptr::copy_nonoverlapping(src.add(partial), stolen.as_mut_ptr(), tail);
        }

        match dir {
            Dir::Encrypt => {
                // CC = E(P_{m-1}) under T_{m-1}; T advances to T_m.
                self.engine.block(dir, t, &mut last);
                // PP = P_m ‖ CC[tail..]; C_m = CC[..tail]; C_{m-1} = E(PP) under T_m.
                stolen[tail..].copy_from_slice(&last[tail..]);
                self.engine.block(dir, t, &mut stolen);
                // SAFETY: destinations lie inside the unit, as above.
                unsafe {
                    core::ptr::copy_nonoverlapping(last.as_ptr(), dst.add(partial), tail);
                    core::ptr::copy_nonoverlapping(stolen.as_ptr(), dst.add(last_full), BLOCK_SIZE);
                }
            }
            Dir::Decrypt => {
                // PP = D(C_{m-1}) under T_m; P_m = PP[..tail].
                let mut t_prev = *t;
                let mut t_next = backend::mul_x(t);
                self.engine.block(dir, &mut t_next, &mut last);
                // CC = C_m ‖ PP[tail..]; P_{m-1} = D(CC) under T_{m-1}.
                stolen[tail..].copy_from_slice(&last[tail..]);
                self.engine.block(dir, &mut t_prev, &mut stolen);
                // SAFETY: destinations lie inside the unit, as above.
                unsafe {
                    core::ptr::copy_nonoverlapping(last.as_ptr(), dst.add(partial), tail);
                    core::ptr::copy_nonoverlapping(stolen.as_ptr(), dst.add(last_full), BLOCK_SIZE);
                }
                t_prev.zeroize();
                t_next.zeroize();
            }
        }
        last.zeroize();
        stolen.zeroize();
    }

    /// A run of sectors: `len` bytes from `src` to `dst`.
    ///
    /// # Safety
    /// As for [`Xts::unit`].
    unsafe fn sectors(
        &self,
        dir: Dir,
        first_sector: u64,
        sector_size: usize,
        src: *const u8,
        dst: *mut u8,
        len: usize,
    ) -> Result<(), Error> {
        let count = Self::check_sectors(first_sector, sector_size, len)?;
        let blocks = sector_size / BLOCK_SIZE;
        let mut tweaks = [[0u8; 16]; TWEAK_BATCH];
        let mut done = 0usize;
        let mut sector = first_sector;
        while done < count {
            let n = (count - done).min(TWEAK_BATCH);
            for t in tweaks[..n].iter_mut() {
                *t = u128::from(sector).to_le_bytes();
                // The last sector of the run is checked above; past it the
                // value is never used, so wrapping is harmless.
                sector = sector.wrapping_add(1);
            }
            self.engine.encrypt_tweaks(&mut tweaks[..n]);
            let off = done * sector_size;
            // SAFETY: sectors `done .. done + n` lie inside the
            // `count * sector_size` bytes the caller vouched for.
            unsafe {
                self.engine
                    .sectors(dir, &mut tweaks[..n], src.add(off), dst.add(off), blocks)
            };
            done += n;
        }
        tweaks.zeroize();
        Ok(())
    }
}
