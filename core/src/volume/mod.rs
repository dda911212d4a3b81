//! The volume lifecycle: create, open, attach, read and write sectors,
//! detach, rewrap, retire — over any [`BlockDevice`] and any [`Kms`].
//!
//! A [`Volume`] is detached: it holds the device and the header copies it
//! read, and no key, so it cannot read or write data (there are no such
//! methods). An [`AttachedVolume`] holds the XTS engine made from the
//! unwrapped data key; it is shared by any number of threads at once (its
//! data calls take `&self`, with no lock on the way), and
//! [`AttachedVolume::detach`] (or dropping it) wipes the key.
//!
//! Data sector `n` sits at `data_offset + n * sector_size` and is encrypted
//! with tweak `n` (`aes-xts-plain64`), so the data area opens with
//! `cryptsetup open --type plain --cipher aes-xts-plain64` given the data
//! key (see [`crate::header::Params::cryptsetup_args`]).
//!
//! Headers: opening reads both copies and trusts neither. Attach tries the
//! newest readable copy first and falls back to the other when the newest
//! turns out not to be this volume's (its key does not unwrap for its
//! context, or its MAC fails); only after a copy is verified is the other
//! slot repaired with it. A caller that knows which volume it expects says
//! so ([`Volume::open_expecting`]) and copies naming another id are never
//! used. Header updates (rewrap, retire) write the slot not holding the
//! verified copy first, flush, then the other; a write torn at any byte
//! leaves one good copy, old or new.
//!
//! Leases ([`AttachedVolume::with_lease`]): an attached volume may hold its
//! key only for a bounded time without the key service's renewed consent.
//! [`AttachedVolume::maintain`] renews it (the same authorization as
//! attach, audited by the service) when due; a refusal wipes the key at
//! once, an unreachable service is given `grace` seconds past the lease's
//! end, and every data call after that fails with
//! [`VolumeError::LeaseExpired`], nothing half done.

use core::fmt;

use crate::envelope::MAX_BLOB;
use crate::header::{
    self, Candidates, Header, HeaderError, MacKey, OwnedHeader, Params, SLOT_SIZE, VolumeState,
};
use crate::kms::{Kms, KmsError};
use crate::xts::{Error as XtsError, Xts};

mod attached;
mod device;

pub use attached::{AttachedVolume, LeaseConfig, LeaseStatus, NoClock};
#[cfg(all(feature = "std", unix))]
pub use device::FileDevice;
pub use device::{BlockDevice, IoError};
#[cfg(feature = "alloc")]
pub use device::{MemDevice, MemState};

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
    /// The unwrapped data key does not fit the header's cipher suite, or a
    /// rewrap's new wrapped key does not hold the volume's data key.
    KeyMismatch,
    /// The device already holds an envol volume header (creating needs
    /// [`CreateOptions::overwrite`]).
    Exists,
    /// The lease ran out or its renewal was refused: the key was wiped.
    LeaseExpired,
}

impl VolumeError {
    /// The C ABI's name for this error (`envol.h`).
    pub fn status_name(self) -> &'static str {
        match self {
            VolumeError::Io(_) => "ENVOL_ERR_IO",
            VolumeError::Header(h) => h.status_name(),
            VolumeError::Kms(k) => k.status_name(),
            VolumeError::Xts(x) => x.status_name(),
            VolumeError::OutOfRange => "ENVOL_ERR_OUT_OF_RANGE",
            VolumeError::Retired => "ENVOL_ERR_VOLUME_RETIRED",
            VolumeError::KeyMismatch => "ENVOL_ERR_KEY_MISMATCH",
            VolumeError::Exists => "ENVOL_ERR_VOLUME_EXISTS",
            VolumeError::LeaseExpired => "ENVOL_ERR_LEASE_EXPIRED",
        }
    }
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
            VolumeError::KeyMismatch => {
                f.write_str("data key does not fit the volume (cipher suite or rewrap)")
            }
            VolumeError::Exists => f.write_str("the device already holds an envol volume"),
            VolumeError::LeaseExpired => {
                f.write_str("the volume's lease ran out or was refused; its key was wiped")
            }
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

/// How [`Volume::create_with`] treats the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Create even over an existing envol volume (its data key, and so all
    /// its data, is lost). Off by default: such a device is `Exists`.
    pub overwrite: bool,
}

/// The bytes of the two header slots as read, and which copies parse.
struct Slots {
    raw: [[u8; SLOT_SIZE]; 2],
}

impl Slots {
    fn read<D: BlockDevice>(dev: &D) -> Result<Slots, IoError> {
        let mut raw = [[0u8; SLOT_SIZE]; 2];
        for (i, slot) in raw.iter_mut().enumerate() {
            dev.read_at(slot_offset(i), slot)?;
        }
        Ok(Slots { raw })
    }

    fn candidates(&self, expected: Option<&[u8; 16]>) -> Result<Candidates<'_>, HeaderError> {
        Candidates::new(&self.raw[0], &self.raw[1], expected)
    }
}

/// Byte offset of header slot `i` (0 = A, 1 = B).
fn slot_offset(i: usize) -> u64 {
    if i == 0 { 0 } else { SLOT_SIZE as u64 }
}

/// The header copies of a volume's two slots: the one it goes by (the
/// newest readable; once attached, the verified one) and what the other
/// slot holds. No `Option`s and no padding: a C caller's `envol_volume`
/// holding one has no byte that was never written.
#[derive(Clone)]
pub(crate) struct Copies {
    /// The slot of `current` (0 = A, 1 = B).
    pub(crate) slot: usize,
    pub(crate) current: OwnedHeader,
    other: OwnedHeader,
    /// 1 if `other` is what the other slot holds, 0 if that is unreadable
    /// or unknown.
    other_ok: usize,
}

impl Copies {
    pub(crate) fn new(slot: usize, current: OwnedHeader, other: Option<OwnedHeader>) -> Copies {
        let other_ok = usize::from(other.is_some());
        Copies {
            slot,
            current,
            other: other.unwrap_or_else(OwnedHeader::blank),
            other_ok,
        }
    }

    /// The other slot's copy, if readable.
    pub(crate) fn other(&self) -> Option<&OwnedHeader> {
        (self.other_ok == 1).then_some(&self.other)
    }

    pub(crate) fn set_other(&mut self, h: Option<OwnedHeader>) {
        self.other_ok = usize::from(h.is_some());
        self.other = h.unwrap_or_else(OwnedHeader::blank);
    }

    /// Makes the other copy current (it verified where the current failed).
    fn swap(&mut self) {
        core::mem::swap(&mut self.current, &mut self.other);
        self.slot = 1 - self.slot;
    }
}

/// The volume id a caller expects, if any (padding-free, as [`Copies`]).
#[derive(Clone, Copy)]
pub(crate) struct Expected {
    id: [u8; 16],
    set: u64,
}

impl Expected {
    pub(crate) fn new(id: Option<[u8; 16]>) -> Expected {
        Expected {
            id: id.unwrap_or([0; 16]),
            set: u64::from(id.is_some()),
        }
    }

    pub(crate) fn get(&self) -> Option<[u8; 16]> {
        (self.set == 1).then_some(self.id)
    }
}

/// A detached volume: device and header copies, no key.
pub struct Volume<D: BlockDevice> {
    dev: D,
    copies: Copies,
    expected: Expected,
}

impl<D: BlockDevice> fmt::Debug for Volume<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Volume")
            .field("header", &self.header())
            .finish_non_exhaustive()
    }
}

impl<D: BlockDevice> Volume<D> {
    /// Creates a volume: a fresh data key from `kms` (wrapped under `key_id`
    /// for the volume's context), both header copies written, and the
    /// volume returned attached. The data area is not touched. A device
    /// that already holds an envol header (either copy) is `Exists`, and
    /// an all-zero volume id is refused (use random ids).
    pub fn create<K: Kms + ?Sized>(
        dev: D,
        kms: &mut K,
        principal: &str,
        key_id: &str,
        params: Params,
    ) -> Result<AttachedVolume<D>, VolumeError> {
        Self::create_with(
            dev,
            kms,
            principal,
            key_id,
            params,
            &CreateOptions::default(),
        )
    }

    /// [`Volume::create`] with options.
    pub fn create_with<K: Kms + ?Sized>(
        dev: D,
        kms: &mut K,
        principal: &str,
        key_id: &str,
        params: Params,
        options: &CreateOptions,
    ) -> Result<AttachedVolume<D>, VolumeError> {
        params.check()?;
        if params.volume_id == [0; 16] {
            return Err(HeaderError::Malformed("volume id").into());
        }
        if !options.overwrite {
            let slots = Slots::read(&dev)?;
            if slots.raw.iter().any(|s| header::has_magic(s)) {
                return Err(VolumeError::Exists);
            }
        }
        let mut blob = [0u8; MAX_BLOB];
        let strings = Header::shell(params).context_strings();
        let ctx = strings.context();
        let (dek, n) =
            kms.generate_data_key(principal, key_id, params.suite.key_size(), &ctx, &mut blob)?;
        let mut h = Header::new(params, &blob[..n])?;
        let mac_key = MacKey::derive(dek.as_bytes());
        h.seal_mac_with(&mac_key)?;
        let current = OwnedHeader::new(&h)?;
        let bytes = current.encode()?;
        // A new volume: both copies, A then B, each flushed.
        for i in 0..2 {
            dev.write_at(slot_offset(i), &bytes)?;
            dev.flush()?;
        }
        let xts = Xts::new(dek.as_bytes())?;
        let vol = Volume {
            dev,
            copies: Copies::new(0, current.clone(), Some(current)),
            expected: Expected::new(Some(params.volume_id)),
        };
        AttachedVolume::new(vol, xts, mac_key, principal).map_err(|(_, e)| e)
    }

    /// Opens a device: reads both header copies (writing nothing; no key
    /// involved). A device with no readable copy is an error.
    pub fn open(dev: D) -> Result<Volume<D>, (D, VolumeError)> {
        Self::open_inner(dev, None)
    }

    /// [`Volume::open`] for a caller that knows which volume it expects:
    /// copies naming another volume id are ignored, and a device holding
    /// only such copies is `Header(WrongVolume)`.
    pub fn open_expecting(dev: D, volume_id: [u8; 16]) -> Result<Volume<D>, (D, VolumeError)> {
        Self::open_inner(dev, Some(volume_id))
    }

    fn open_inner(dev: D, expected: Option<[u8; 16]>) -> Result<Volume<D>, (D, VolumeError)> {
        let copies = Slots::read(&dev)
            .map_err(VolumeError::from)
            .and_then(|slots| {
                let c = slots.candidates(expected.as_ref())?;
                let mut it = c.copies.into_iter().flatten();
                let (slot, h) = it.next().ok_or(HeaderError::BothCorrupt)?;
                let other = it.next().map(|(_, h)| OwnedHeader::new(&h)).transpose()?;
                Ok(((slot, OwnedHeader::new(&h)?), other))
            });
        match copies {
            Ok(((slot, best), other)) => Ok(Volume {
                dev,
                copies: Copies::new(slot, best, other),
                expected: Expected::new(expected),
            }),
            Err(e) => Err((dev, e)),
        }
    }

    /// The newest readable header copy (not yet authenticated: attach
    /// verifies it, or falls back to the other copy).
    pub fn header(&self) -> Header<'_> {
        self.copies.current.view()
    }

    /// The volume id this volume was opened expecting, if any.
    pub fn expected_volume_id(&self) -> Option<[u8; 16]> {
        self.expected.get()
    }

    /// Attaches as `principal`: unwraps the data key of the newest copy
    /// through `kms` with the copy's context and verifies its MAC; if that
    /// copy proves not to be this volume's (its key does not unwrap for its
    /// context, names no key, or its MAC fails), the other copy is tried.
    /// A retired volume is `Retired` (after its MAC verified). Only after a
    /// copy verified is the other slot rewritten with it, if it differs.
    /// On failure the detached volume comes back untouched.
    #[allow(clippy::result_large_err)] // the volume itself comes back on error
    pub fn attach<K: Kms + ?Sized>(
        mut self,
        kms: &mut K,
        principal: &str,
    ) -> Result<AttachedVolume<D>, (Volume<D>, VolumeError)> {
        let first = unlock(&self.copies.current.view(), kms, principal);
        let (xts, mac_key) = match first {
            Ok(k) => k,
            Err(e) if not_this_volume(e) && self.copies.other().is_some() => {
                let Some(other) = self.copies.other() else {
                    return Err((self, e));
                };
                match unlock(&other.view(), kms, principal) {
                    Ok(k) => {
                        // The other copy is the volume's own: it becomes
                        // the current one, and the bad one gets repaired.
                        self.copies.swap();
                        k
                    }
                    Err(e2) if not_this_volume(e2) => return Err((self, e)),
                    Err(e2) => return Err((self, e2)),
                }
            }
            Err(e) => return Err((self, e)),
        };
        self.repair();
        AttachedVolume::new(self, xts, mac_key, principal)
    }

    /// Rewrites the other slot with the verified current copy if it
    /// differs. Best effort: the verified copy is intact either way, and
    /// the next header update writes both slots.
    fn repair(&mut self) {
        let c = &mut self.copies;
        if c.other() == Some(&c.current) {
            return;
        }
        let Ok(bytes) = c.current.encode() else {
            return;
        };
        let wrote = self
            .dev
            .write_at(slot_offset(1 - c.slot), &bytes)
            .and_then(|()| self.dev.flush());
        let now = wrote.ok().map(|()| c.current.clone());
        c.set_other(now);
    }

    /// Makes earlier writes durable (the device's flush), attached or not.
    pub fn flush(&self) -> Result<(), VolumeError> {
        self.dev.flush()?;
        Ok(())
    }

    /// The device underneath.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Gives the device back.
    pub fn into_device(self) -> D {
        self.dev
    }
}

/// Errors that prove a header copy is not this volume's own (forged,
/// foreign, damaged under a valid checksum), as opposed to refusals and
/// failures that say nothing about the copy.
fn not_this_volume(e: VolumeError) -> bool {
    matches!(
        e,
        VolumeError::Kms(KmsError::InvalidCiphertext | KmsError::NotFound)
            | VolumeError::Header(_)
            | VolumeError::KeyMismatch
    )
}

/// Unwraps the data key of `h` and verifies the copy's MAC.
fn unlock<K: Kms + ?Sized>(
    h: &Header<'_>,
    kms: &mut K,
    principal: &str,
) -> Result<(Xts, MacKey), VolumeError> {
    let strings = h.context_strings();
    let dek = kms
        .decrypt_data_key(principal, h.blob, &strings.context())
        .map_err(|e| match e {
            // The service's tombstone: one spelling with the header's own.
            KmsError::VolumeRetired => VolumeError::Retired,
            e => VolumeError::Kms(e),
        })?;
    if dek.size() != h.params.suite.key_size() {
        return Err(VolumeError::KeyMismatch);
    }
    let mac_key = MacKey::derive(dek.as_bytes());
    h.verify_mac_with(&mac_key)?;
    if h.state == VolumeState::Retired {
        return Err(VolumeError::Retired);
    }
    Ok((Xts::new(dek.as_bytes())?, mac_key))
}

/// The low level's attach (for hypervisors that do their own I/O): from the
/// two raw slots, the verified copy's data key through `kms`, tried in the
/// same order and with the same fallback as [`Volume::attach`]. Returns the
/// engine, and the slot whose copy verified (the other should be rewritten
/// with it if it differs).
pub fn unlock_slots<K: Kms + ?Sized>(
    a: &[u8],
    b: &[u8],
    expected: Option<&[u8; 16]>,
    kms: &mut K,
    principal: &str,
) -> Result<(Xts, usize), VolumeError> {
    let c = Candidates::new(a, b, expected)?;
    let mut last = VolumeError::Header(HeaderError::BothCorrupt);
    for (slot, h) in c.copies.into_iter().flatten() {
        match unlock(&h, kms, principal) {
            Ok((xts, _)) => return Ok((xts, slot)),
            Err(e) if not_this_volume(e) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}
