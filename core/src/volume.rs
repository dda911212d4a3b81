//! The volume lifecycle: create, attach, read and write sectors, detach,
//! rewrap — over any [`BlockDevice`] and any [`Kms`].
//!
//! A [`Volume`] is detached: it holds the device and the parsed header, and
//! no key, so it cannot read or write data (there are no such methods). An
//! [`AttachedVolume`] holds the XTS context built from the unwrapped data
//! key; [`AttachedVolume::detach`] (or dropping it) wipes the key.
//!
//! Data sector `n` sits at `data_offset + n * sector_size` and is encrypted
//! with tweak `n` (`aes-xts-plain64`), so the data area opens with
//!
//! ```text
//! cryptsetup open --type plain --cipher aes-xts-plain64 --key-size 512 \
//!     --offset <data_offset / 512> --sector-size <sector_size> --iv-large-sectors \
//!     --key-file <64-byte data key> <device> <name>
//! ```
//!
//! Header updates (rewrap, retire) are crash-safe: the new header goes first
//! into the slot holding the older (or damaged) copy, is flushed, and only
//! then into the other slot; a write torn at any byte leaves one good copy,
//! old or new, and the newest good copy wins at attach.

use core::fmt;

use crate::envelope::MAX_BLOB;
use crate::header::{
    self, CipherSuite, Header, HeaderError, MacKey, Params, SLOT_SIZE, VolumeState,
};
use crate::kms::{Kms, KmsError};
use crate::xts::{Error as XtsError, Xts};

/// A device error, as the device reports it (an errno, a status code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IoError(pub i32);

/// Whole-device byte I/O. Reads and writes are exact: all bytes or an error.
pub trait BlockDevice {
    /// Reads `buf.len()` bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError>;
    /// Writes `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError>;
    /// Makes earlier writes durable.
    fn flush(&mut self) -> Result<(), IoError>;
}

impl<D: BlockDevice + ?Sized> BlockDevice for &mut D {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        (**self).write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        (**self).flush()
    }
}

/// Why a volume operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VolumeError {
    /// The device failed.
    Io(IoError),
    /// The header is unreadable, or its MAC failed (`Tampered`).
    Header(HeaderError),
    /// The key service refused or failed.
    Kms(KmsError),
    /// The engine refused the request (length, sector size).
    Xts(XtsError),
    /// The sectors asked for lie outside the volume.
    OutOfRange,
    /// The volume was retired.
    Retired,
    /// The unwrapped data key does not fit the header's cipher suite.
    KeyMismatch,
}

impl fmt::Display for VolumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VolumeError::Io(e) => write!(f, "device error {}", e.0),
            VolumeError::Header(e) => write!(f, "{e}"),
            VolumeError::Kms(e) => write!(f, "key service: {e}"),
            VolumeError::Xts(e) => write!(f, "{e}"),
            VolumeError::OutOfRange => f.write_str("sectors outside the volume"),
            VolumeError::Retired => f.write_str("volume is retired"),
            VolumeError::KeyMismatch => f.write_str("data key does not fit the cipher suite"),
        }
    }
}

impl core::error::Error for VolumeError {}

impl From<IoError> for VolumeError {
    fn from(e: IoError) -> Self {
        VolumeError::Io(e)
    }
}
impl From<HeaderError> for VolumeError {
    fn from(e: HeaderError) -> Self {
        VolumeError::Header(e)
    }
}
impl From<KmsError> for VolumeError {
    fn from(e: KmsError) -> Self {
        VolumeError::Kms(e)
    }
}
impl From<XtsError> for VolumeError {
    fn from(e: XtsError) -> Self {
        VolumeError::Xts(e)
    }
}

/// The stored header: its encoded bytes, kept so the parsed view can borrow.
#[derive(Clone)]
struct Stored {
    bytes: [u8; SLOT_SIZE],
}

impl Stored {
    fn header(&self) -> Result<Header<'_>, HeaderError> {
        Header::parse(&self.bytes)
    }
}

/// A detached volume: device and header, no key.
pub struct Volume<D: BlockDevice> {
    dev: D,
    stored: Stored,
}

impl<D: BlockDevice> fmt::Debug for Volume<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Volume")
            .field("header", &self.stored.header().ok())
            .finish_non_exhaustive()
    }
}

/// An attached volume: holds the XTS key; wiped on detach and on drop.
pub struct AttachedVolume<D: BlockDevice> {
    vol: Volume<D>,
    xts: Xts,
    mac_key: MacKey,
    params: Params,
}

impl<D: BlockDevice> fmt::Debug for AttachedVolume<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachedVolume")
            .field("params", &self.params)
            .field("backend", &self.xts.backend())
            .finish_non_exhaustive()
    }
}

/// Reads both slots and picks the newest good copy; repairs the other one
/// when `repair` is set.
fn read_header<D: BlockDevice>(dev: &mut D, repair: bool) -> Result<Stored, VolumeError> {
    let mut a = [0u8; SLOT_SIZE];
    let mut b = [0u8; SLOT_SIZE];
    dev.read_at(0, &mut a)?;
    dev.read_at(SLOT_SIZE as u64, &mut b)?;
    let p = header::pick(&a, &b)?;
    let mut stored = Stored {
        bytes: [0; SLOT_SIZE],
    };
    p.header.encode(&mut stored.bytes)?;
    if repair && p.other_needs_repair {
        let other = (1 - p.slot) as u64 * SLOT_SIZE as u64;
        dev.write_at(other, &stored.bytes)?;
        dev.flush()?;
    }
    Ok(stored)
}

/// Writes a new header crash-safely: first into the slot that does not hold
/// the current winner, flush, then into the other, flush.
fn write_header<D: BlockDevice>(dev: &mut D, new: &[u8; SLOT_SIZE]) -> Result<(), VolumeError> {
    let mut a = [0u8; SLOT_SIZE];
    let mut b = [0u8; SLOT_SIZE];
    dev.read_at(0, &mut a)?;
    dev.read_at(SLOT_SIZE as u64, &mut b)?;
    let first = match header::pick(&a, &b) {
        Ok(p) => 1 - p.slot,
        Err(_) => 0,
    };
    let second = 1 - first;
    dev.write_at(first as u64 * SLOT_SIZE as u64, new)?;
    dev.flush()?;
    dev.write_at(second as u64 * SLOT_SIZE as u64, new)?;
    dev.flush()?;
    Ok(())
}

impl<D: BlockDevice> Volume<D> {
    /// Creates a volume: a fresh data key from `kms` (wrapped under `key_id`
    /// for the volume's context), both header copies written, and the
    /// volume returned attached. The data area is not touched.
    pub fn create<K: Kms + ?Sized>(
        mut dev: D,
        kms: &mut K,
        principal: &str,
        key_id: &str,
        params: Params,
    ) -> Result<AttachedVolume<D>, VolumeError> {
        params.check()?;
        let mut blob = [0u8; MAX_BLOB];
        let dummy = Header {
            params,
            state: VolumeState::Active,
            sequence: 1,
            blob: &[],
            mac: [0; 32],
        };
        let strings = dummy.context_strings();
        let ctx = strings.context();
        let (dek, n) =
            kms.generate_data_key(principal, key_id, params.suite.key_size(), &ctx, &mut blob)?;
        let mut h = Header::new(params, &blob[..n])?;
        h.seal_mac(dek.as_bytes())?;
        let mut bytes = [0u8; SLOT_SIZE];
        h.encode(&mut bytes)?;
        // A new volume: both copies, A then B, each flushed.
        dev.write_at(0, &bytes)?;
        dev.flush()?;
        dev.write_at(SLOT_SIZE as u64, &bytes)?;
        dev.flush()?;
        let xts = Xts::new(dek.as_bytes())?;
        Ok(AttachedVolume {
            vol: Volume {
                dev,
                stored: Stored { bytes },
            },
            xts,
            mac_key: MacKey::derive(dek.as_bytes()),
            params,
        })
    }

    /// Opens a device: reads the header (repairing a damaged or stale copy),
    /// no key involved.
    pub fn open(mut dev: D) -> Result<Volume<D>, (D, VolumeError)> {
        match read_header(&mut dev, true) {
            Ok(stored) => Ok(Volume { dev, stored }),
            Err(e) => Err((dev, e)),
        }
    }

    /// The parsed header.
    pub fn header(&self) -> Header<'_> {
        // `stored` always holds a header this code encoded and parsed.
        self.stored.header().unwrap_or(Header {
            params: Params {
                suite: CipherSuite::AesXts256Plain64,
                sector_size: 512,
                data_offset: header::DEFAULT_DATA_OFFSET,
                volume_size: 512,
                volume_id: [0; 16],
            },
            state: VolumeState::Retired,
            sequence: 0,
            blob: &[],
            mac: [0; 32],
        })
    }

    /// Attaches as `principal`: unwraps the data key through `kms` with the
    /// header's context, verifies the header MAC, sets up the engine. On
    /// failure the detached volume comes back untouched.
    #[allow(clippy::result_large_err)] // the volume itself comes back on error
    pub fn attach<K: Kms + ?Sized>(
        self,
        kms: &mut K,
        principal: &str,
    ) -> Result<AttachedVolume<D>, (Volume<D>, VolumeError)> {
        match self.unlock(kms, principal) {
            Ok((xts, mac_key, params)) => Ok(AttachedVolume {
                vol: self,
                xts,
                mac_key,
                params,
            }),
            Err(e) => Err((self, e)),
        }
    }

    fn unlock<K: Kms + ?Sized>(
        &self,
        kms: &mut K,
        principal: &str,
    ) -> Result<(Xts, MacKey, Params), VolumeError> {
        let h = self.stored.header()?;
        if h.state == VolumeState::Retired {
            return Err(VolumeError::Retired);
        }
        let strings = h.context_strings();
        let dek = kms.decrypt_data_key(principal, h.blob, &strings.context())?;
        if dek.size() != h.params.suite.key_size() {
            return Err(VolumeError::KeyMismatch);
        }
        let mac_key = MacKey::derive(dek.as_bytes());
        h.verify_mac_with(&mac_key)?;
        Ok((Xts::new(dek.as_bytes())?, mac_key, h.params))
    }

    /// Gives the device back.
    pub fn into_device(self) -> D {
        self.dev
    }
}

impl<D: BlockDevice> AttachedVolume<D> {
    /// The volume parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The parsed header.
    pub fn header(&self) -> Header<'_> {
        self.vol.header()
    }

    /// The device underneath, for raw access (tests, tooling). Writes made
    /// here bypass encryption.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.vol.dev
    }

    /// The engine backend in use.
    pub fn backend(&self) -> crate::xts::Backend {
        self.xts.backend()
    }

    /// Detaches: the key is wiped, the detached volume returned.
    pub fn detach(self) -> Volume<D> {
        let AttachedVolume {
            vol, xts, mac_key, ..
        } = self;
        // Both zeroize themselves on drop.
        drop(xts);
        drop(mac_key);
        vol
    }

    fn span(&self, first: u64, len: usize) -> Result<u64, VolumeError> {
        let ss = u64::from(self.params.sector_size);
        let len64 = u64::try_from(len).map_err(|_| VolumeError::OutOfRange)?;
        if !len64.is_multiple_of(ss) {
            return Err(VolumeError::Xts(XtsError::Length));
        }
        let end = first
            .checked_add(len64 / ss)
            .ok_or(VolumeError::OutOfRange)?;
        if end > self.params.sectors() {
            return Err(VolumeError::OutOfRange);
        }
        first
            .checked_mul(ss)
            .and_then(|o| o.checked_add(self.params.data_offset))
            .ok_or(VolumeError::OutOfRange)
    }

    /// Reads whole sectors starting at data sector `first` into `buf`.
    pub fn read_sectors(&mut self, first: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        let off = self.span(first, buf.len())?;
        self.vol.dev.read_at(off, buf)?;
        let ss = self.params.sector_size as usize;
        self.xts.decrypt_sectors(first, ss, buf)?;
        Ok(())
    }

    /// Encrypts `buf` (whole sectors) in place and writes it at data sector
    /// `first`. The caller's buffer holds ciphertext afterwards.
    pub fn write_sectors_in_place(
        &mut self,
        first: u64,
        buf: &mut [u8],
    ) -> Result<(), VolumeError> {
        let off = self.span(first, buf.len())?;
        let ss = self.params.sector_size as usize;
        self.xts.encrypt_sectors(first, ss, buf)?;
        self.vol.dev.write_at(off, buf)?;
        Ok(())
    }

    /// Writes whole sectors from `data` at data sector `first`, through a
    /// bounce buffer of `scratch` (any size that is a whole number of
    /// sectors), leaving `data` untouched.
    pub fn write_sectors(
        &mut self,
        first: u64,
        data: &[u8],
        scratch: &mut [u8],
    ) -> Result<(), VolumeError> {
        self.span(first, data.len())?;
        let ss = self.params.sector_size as usize;
        let chunk = (scratch.len() / ss) * ss;
        if chunk == 0 {
            return Err(VolumeError::Xts(XtsError::Length));
        }
        let mut sector = first;
        for part in data.chunks(chunk) {
            let s = &mut scratch[..part.len()];
            self.xts.encrypt_sectors_to(sector, ss, part, s)?;
            let off = self.span(sector, part.len())?;
            self.vol.dev.write_at(off, s)?;
            sector += (part.len() / ss) as u64;
        }
        Ok(())
    }

    /// Makes written sectors durable.
    pub fn flush(&mut self) -> Result<(), VolumeError> {
        self.vol.dev.flush()?;
        Ok(())
    }

    /// Rewraps the data key under `new_key_id` through the key service's
    /// re-encrypt (the plaintext key never leaves it), without touching data.
    /// Crash-safe: see the module docs.
    pub fn rewrap<K: Kms + ?Sized>(
        &mut self,
        kms: &mut K,
        principal: &str,
        new_key_id: &str,
    ) -> Result<(), VolumeError> {
        let old = self.vol.stored.header()?;
        let strings = old.context_strings();
        let ctx = strings.context();
        let mut blob = [0u8; MAX_BLOB];
        let n = kms.re_encrypt(principal, old.blob, &ctx, new_key_id, &ctx, &mut blob)?;
        let mut h = Header::new(old.params, &blob[..n])?;
        h.state = old.state;
        h.sequence = old
            .sequence
            .checked_add(1)
            .ok_or(HeaderError::Malformed("sequence"))?;
        h.seal_mac_with(&self.mac_key)?;
        self.commit(h)
    }

    fn commit(&mut self, h: Header<'_>) -> Result<(), VolumeError> {
        let mut bytes = [0u8; SLOT_SIZE];
        h.encode(&mut bytes)?;
        write_header(&mut self.vol.dev, &bytes)?;
        self.vol.stored.bytes = bytes;
        Ok(())
    }

    /// Marks the volume retired (attach refused from now on) and detaches.
    pub fn retire(mut self) -> Result<Volume<D>, VolumeError> {
        let old = self.vol.stored.header()?;
        let mut blob = [0u8; MAX_BLOB];
        let n = old.blob.len();
        blob[..n].copy_from_slice(old.blob);
        let mut h = Header::new(old.params, &blob[..n])?;
        h.state = VolumeState::Retired;
        h.sequence = old
            .sequence
            .checked_add(1)
            .ok_or(HeaderError::Malformed("sequence"))?;
        h.seal_mac_with(&self.mac_key)?;
        self.commit(h)?;
        Ok(self.detach())
    }

    /// Marks the volume retired as [`AttachedVolume::retire`] does, but by
    /// reference: on error the volume is still attached and usable (the
    /// header update is crash-safe, as for rewrap); on success it stays
    /// attached until the caller detaches it, and attach is refused from
    /// then on. For callers that keep the volume in place (the C ABI).
    pub fn mark_retired(&mut self) -> Result<(), VolumeError> {
        let old = self.vol.stored.header()?;
        let mut blob = [0u8; MAX_BLOB];
        let n = old.blob.len();
        blob[..n].copy_from_slice(old.blob);
        let mut h = Header::new(old.params, &blob[..n])?;
        h.state = VolumeState::Retired;
        h.sequence = old
            .sequence
            .checked_add(1)
            .ok_or(HeaderError::Malformed("sequence"))?;
        h.seal_mac_with(&self.mac_key)?;
        self.commit(h)
    }
}

/// An in-memory device (`alloc`), sparse-free: a plain byte vector.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct MemDevice {
    /// The bytes of the device.
    pub bytes: alloc::vec::Vec<u8>,
    /// Writes allowed before the device "loses power": further writes fail
    /// and the last one lands only `torn_at` bytes (for crash tests).
    pub fail_after_writes: Option<usize>,
    /// Bytes of the failing write that still land.
    pub torn_at: usize,
    /// Writes so far.
    pub writes: usize,
}

#[cfg(feature = "alloc")]
impl MemDevice {
    /// A zero-filled device of `len` bytes.
    pub fn new(len: usize) -> MemDevice {
        MemDevice {
            bytes: alloc::vec![0; len],
            ..MemDevice::default()
        }
    }
}

#[cfg(feature = "alloc")]
impl BlockDevice for MemDevice {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let o = usize::try_from(offset).map_err(|_| IoError(22))?;
        let src = o
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(o..end))
            .ok_or(IoError(5))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        let o = usize::try_from(offset).map_err(|_| IoError(22))?;
        let end = o.checked_add(buf.len()).ok_or(IoError(22))?;
        if end > self.bytes.len() {
            return Err(IoError(28));
        }
        if let Some(limit) = self.fail_after_writes
            && self.writes >= limit
        {
            if self.writes == limit {
                let n = self.torn_at.min(buf.len());
                self.bytes[o..o + n].copy_from_slice(&buf[..n]);
            }
            self.writes += 1;
            return Err(IoError(5));
        }
        self.bytes[o..end].copy_from_slice(buf);
        self.writes += 1;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

/// A device over a file (`std`): sparse, any size; `flush` is `fsync`.
#[cfg(all(feature = "std", unix))]
#[derive(Debug)]
pub struct FileDevice(pub std::fs::File);

#[cfg(all(feature = "std", unix))]
impl FileDevice {
    /// Creates (or truncates) a sparse file of `len` bytes.
    pub fn create(path: &std::path::Path, len: u64) -> std::io::Result<FileDevice> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        f.set_len(len)?;
        Ok(FileDevice(f))
    }

    /// Opens an existing file read-write.
    pub fn open(path: &std::path::Path) -> std::io::Result<FileDevice> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(FileDevice(f))
    }
}

#[cfg(all(feature = "std", unix))]
fn io_err(e: &std::io::Error) -> IoError {
    IoError(e.raw_os_error().unwrap_or(5))
}

#[cfg(all(feature = "std", unix))]
impl BlockDevice for FileDevice {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        use std::os::unix::fs::FileExt;
        self.0.read_exact_at(buf, offset).map_err(|e| io_err(&e))
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        use std::os::unix::fs::FileExt;
        self.0.write_all_at(buf, offset).map_err(|e| io_err(&e))
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.0.sync_data().map_err(|e| io_err(&e))
    }
}
