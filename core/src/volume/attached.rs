//! An attached volume: the data path many threads share, its lease, and
//! the header updates it makes (rewrap, retire).
//!
//! The keys sit behind a [`Gate`]: every data call enters it (two atomic
//! operations, no lock) and leaves when done, device I/O included. Wiping
//! the keys (a refused or lapsed lease) takes the gate, which stops new
//! calls and waits for those inside to finish; afterwards every call fails
//! with [`VolumeError::LeaseExpired`]. Nothing a call does is cut short:
//! it ran entirely before the wipe or not at all. Detach takes the volume
//! by value, so no call can be running.
//!
//! Header updates and lease renewals, which may wait on the key service,
//! take turns on a [`Mutex`]; data calls never touch it.

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use super::{BlockDevice, Copies, Expected, Volume, VolumeError, slot_offset};
use crate::envelope::MAX_BLOB;
use crate::gate::{Gate, Mutex, Pass};
use crate::header::{Header, HeaderError, MacKey, OwnedHeader, Params, VolumeState};
use crate::kms::{Clock, Kms, KmsError};
use crate::xts::{Backend, Error as XtsError, Xts};

/// How long an attached volume may keep its key without the key service's
/// renewed consent. All in seconds of the lease's [`Clock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Length of a lease; 0 turns leases off.
    pub duration: u64,
    /// Renew this long before the lease ends (at most `duration`).
    pub renew_before: u64,
    /// How long past the lease's end an unreachable key service is waited
    /// for before the key is wiped: availability against revocation delay,
    /// the operator's choice. A refusal is never given grace.
    pub grace: u64,
}

impl LeaseConfig {
    /// No lease: the key stays until detach.
    pub const OFF: LeaseConfig = LeaseConfig {
        duration: 0,
        renew_before: 0,
        grace: 0,
    };

    /// A lease of `duration` seconds, renewed half-way, with `grace`
    /// seconds for an unreachable key service.
    pub const fn new(duration: u64, grace: u64) -> LeaseConfig {
        LeaseConfig {
            duration,
            renew_before: duration / 2,
            grace,
        }
    }
}

/// What [`AttachedVolume::maintain`] found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseStatus {
    /// The volume has no lease.
    Off,
    /// Not due for renewal; the lease ends at `expires_at`.
    Valid {
        /// When the lease ends.
        expires_at: u64,
    },
    /// Renewed; the lease now ends at `expires_at`.
    Renewed {
        /// When the lease ends.
        expires_at: u64,
    },
    /// The key service could not be reached; the volume keeps its key until
    /// `deadline` (the lease's end plus the grace period).
    Unreachable {
        /// When the lease ends.
        expires_at: u64,
        /// When the key is wiped unless a renewal succeeds first.
        deadline: u64,
    },
}

/// The clock of a volume without a lease.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoClock;

impl Clock for NoClock {
    fn now(&self) -> u64 {
        0
    }
}

/// The longest principal an attached volume remembers (for renewals).
const MAX_PRINCIPAL: usize = 256;

/// Gate states of the keys.
const LIVE: usize = 1;
const WIPED: usize = 2;

struct Keys {
    xts: Xts,
    mac: MacKey,
}

/// The lease of a volume: its settings, its clock, and when it ends.
struct Lease<C> {
    cfg: LeaseConfig,
    clock: C,
    /// When the lease was granted or last renewed's base time.
    base: u64,
    /// The end of the lease, as seconds after `base` (32 bits: atomics of
    /// that width exist on every target).
    end: AtomicU32,
}

impl<C: Clock> Lease<C> {
    fn new(cfg: LeaseConfig, clock: C) -> Lease<C> {
        let base = clock.now();
        let end = AtomicU32::new(u32::try_from(cfg.duration).unwrap_or(u32::MAX));
        Lease {
            cfg,
            clock,
            base,
            end,
        }
    }

    fn on(&self) -> bool {
        self.cfg.duration != 0
    }

    fn expires_at(&self) -> u64 {
        self.base
            .saturating_add(u64::from(self.end.load(Ordering::SeqCst)))
    }

    fn deadline(&self) -> u64 {
        self.expires_at().saturating_add(self.cfg.grace)
    }

    fn extend(&self, now: u64) -> u64 {
        let until = now.saturating_add(self.cfg.duration);
        let rel = until.saturating_sub(self.base);
        self.end
            .store(u32::try_from(rel).unwrap_or(u32::MAX), Ordering::SeqCst);
        self.expires_at()
    }
}

/// An attached volume: holds the XTS key, wiped on detach, on drop, and
/// when its lease is refused or lapses. Share it between threads (it is
/// `Sync` when its device and clock are): every data call takes `&self`.
pub struct AttachedVolume<D: BlockDevice, C: Clock = NoClock> {
    dev: D,
    params: Params,
    expected: Expected,
    /// Which copy is current (verified, in which slot) and what the other
    /// slot holds; changed only under this mutex.
    copies: Mutex<Copies>,
    gate: Gate,
    keys: UnsafeCell<Option<Keys>>,
    principal: ([u8; MAX_PRINCIPAL], usize),
    lease: Lease<C>,
}

// SAFETY: the only unsynchronised field is `keys`. Data calls read it only
// while inside the gate in state LIVE; it is written (wiped) only by a
// thread that took the gate, which waits until every other thread left
// and keeps new ones out. The device and clock are shared as `&D`/`&C`,
// hence their `Sync` bound. `copies` is behind a mutex.
unsafe impl<D: BlockDevice + Sync, C: Clock + Sync> Sync for AttachedVolume<D, C> {}

impl<D: BlockDevice, C: Clock> fmt::Debug for AttachedVolume<D, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachedVolume")
            .field("params", &self.params)
            .field("attached", &(self.gate.state() == LIVE))
            .finish_non_exhaustive()
    }
}

impl<D: BlockDevice> AttachedVolume<D> {
    /// An attached volume from a detached one whose `best` copy verified.
    #[allow(clippy::result_large_err)]
    pub(super) fn new(
        vol: Volume<D>,
        xts: Xts,
        mac: MacKey,
        principal: &str,
    ) -> Result<AttachedVolume<D>, (Volume<D>, VolumeError)> {
        let mut p = [0u8; MAX_PRINCIPAL];
        let Some(dst) = p.get_mut(..principal.len()) else {
            return Err((vol, VolumeError::Kms(KmsError::InvalidArgument)));
        };
        dst.copy_from_slice(principal.as_bytes());
        let Volume {
            dev,
            copies,
            expected,
        } = vol;
        Ok(AttachedVolume {
            dev,
            params: copies.current.view().params,
            expected,
            copies: Mutex::new(copies),
            gate: Gate::new(LIVE),
            keys: UnsafeCell::new(Some(Keys { xts, mac })),
            principal: (p, principal.len()),
            lease: Lease::new(LeaseConfig::OFF, crate::volume::NoClock),
        })
    }
}

impl<D: BlockDevice, C: Clock> AttachedVolume<D, C> {
    /// The same volume under a lease of `cfg` on `clock`, starting now.
    pub fn with_lease<C2: Clock>(self, cfg: LeaseConfig, clock: C2) -> AttachedVolume<D, C2> {
        let AttachedVolume {
            dev,
            params,
            expected,
            copies,
            gate,
            keys,
            principal,
            ..
        } = self;
        let renew_before = cfg.renew_before.min(cfg.duration);
        let cfg = LeaseConfig {
            renew_before,
            ..cfg
        };
        AttachedVolume {
            dev,
            params,
            expected,
            copies,
            gate,
            keys,
            principal,
            lease: Lease::new(cfg, clock),
        }
    }

    /// The volume parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The current (verified) header.
    pub fn header(&self) -> OwnedHeader {
        self.copies.with(|c| c.current.clone())
    }

    /// The device underneath, for raw access (tests, tooling). Writes made
    /// there bypass encryption.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The engine backend in use, or `None` once the key was wiped.
    pub fn backend(&self) -> Option<Backend> {
        let pass = self.gate.enter(|s| s == LIVE).ok()?;
        self.keys(&pass).ok().map(|k| k.xts.backend())
    }

    /// Whether the key is still held (not wiped by a lost lease).
    pub fn is_live(&self) -> bool {
        self.gate.state() == LIVE
    }

    /// The lease's end, if there is a lease.
    pub fn lease_expires_at(&self) -> Option<u64> {
        self.lease.on().then(|| self.lease.expires_at())
    }

    /// When the key is wiped unless renewed first (the lease's end plus
    /// the grace period), if there is a lease.
    pub fn lease_deadline(&self) -> Option<u64> {
        self.lease.on().then(|| self.lease.deadline())
    }

    /// The keys, for a caller inside the gate.
    fn keys<'p>(&'p self, _pass: &'p Pass<'_>) -> Result<&'p Keys, VolumeError> {
        // SAFETY: a pass that entered in state LIVE exists for 'p; the keys
        // are only written by a thread holding the gate, which waits until
        // every pass is gone (see the `Sync` impl).
        unsafe { (*self.keys.get()).as_ref() }.ok_or(VolumeError::LeaseExpired)
    }

    /// Enters the gate for a data call; a lease past its deadline wipes
    /// the key here and then, and the call fails.
    fn enter(&self) -> Result<Pass<'_>, VolumeError> {
        let pass = self
            .gate
            .enter(|s| s == LIVE)
            .map_err(|_| VolumeError::LeaseExpired)?;
        if self.lease.on() && self.lease.clock.now() >= self.lease.deadline() {
            self.wipe_inside(&pass);
            return Err(VolumeError::LeaseExpired);
        }
        Ok(pass)
    }

    /// Wipes the key from inside the gate: waits for every other call to
    /// leave; later calls fail. Does nothing if another thread got there
    /// first.
    fn wipe_inside(&self, pass: &Pass<'_>) {
        if self.gate.take_inside(pass) {
            // SAFETY: this thread holds the gate and no other pass exists
            // (`take_inside` waited for them); nothing borrows the keys.
            unsafe { *self.keys.get() = None };
            self.gate.release(WIPED);
        }
    }

    /// The byte offset of data sector `first`, if `len` bytes from there
    /// are whole sectors inside the volume.
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

    fn sector_size(&self) -> usize {
        // At most 65,536 (checked by `Params::check`).
        self.params.sector_size as usize
    }

    /// Encrypts whole sectors in place, as they go to data sector `first`
    /// on: for callers that do their own I/O (the ciphertext goes to byte
    /// `data_offset + first * sector_size` of the device).
    pub fn encrypt_sectors(&self, first: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        self.span(first, buf.len())?;
        let pass = self.enter()?;
        let ss = self.sector_size();
        self.keys(&pass)?.xts.encrypt_sectors(first, ss, buf)?;
        Ok(())
    }

    /// Encrypts whole sectors from `src` into `dst` (same length; `src` is
    /// only read): the zero-copy form of a guest write.
    pub fn encrypt_sectors_to(
        &self,
        first: u64,
        src: &[u8],
        dst: &mut [u8],
    ) -> Result<(), VolumeError> {
        self.span(first, src.len())?;
        let pass = self.enter()?;
        let ss = self.sector_size();
        self.keys(&pass)?
            .xts
            .encrypt_sectors_to(first, ss, src, dst)?;
        Ok(())
    }

    /// Decrypts whole sectors read from data sector `first` on, in place:
    /// the zero-copy form of a guest read.
    pub fn decrypt_sectors(&self, first: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        self.span(first, buf.len())?;
        let pass = self.enter()?;
        let ss = self.sector_size();
        self.keys(&pass)?.xts.decrypt_sectors(first, ss, buf)?;
        Ok(())
    }

    /// Decrypts whole sectors from `src` into `dst`.
    pub fn decrypt_sectors_to(
        &self,
        first: u64,
        src: &[u8],
        dst: &mut [u8],
    ) -> Result<(), VolumeError> {
        self.span(first, src.len())?;
        let pass = self.enter()?;
        let ss = self.sector_size();
        self.keys(&pass)?
            .xts
            .decrypt_sectors_to(first, ss, src, dst)?;
        Ok(())
    }

    /// Reads whole sectors starting at data sector `first` into `buf`.
    /// On a device error `buf` holds whatever the device wrote into it.
    pub fn read_sectors(&self, first: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        let off = self.span(first, buf.len())?;
        let pass = self.enter()?;
        self.dev.read_at(off, buf)?;
        let ss = self.sector_size();
        self.keys(&pass)?.xts.decrypt_sectors(first, ss, buf)?;
        Ok(())
    }

    /// Encrypts `buf` (whole sectors) in place and writes it at data sector
    /// `first`. The caller's buffer holds ciphertext afterwards.
    pub fn write_sectors_in_place(&self, first: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        let off = self.span(first, buf.len())?;
        let pass = self.enter()?;
        let ss = self.sector_size();
        self.keys(&pass)?.xts.encrypt_sectors(first, ss, buf)?;
        self.dev.write_at(off, buf)?;
        Ok(())
    }

    /// Writes whole sectors from `data` at data sector `first`, through a
    /// bounce buffer of `scratch` (any size that is a whole number of
    /// sectors), leaving `data` untouched. On a device error a prefix of
    /// the sectors may have been written.
    pub fn write_sectors(
        &self,
        first: u64,
        data: &[u8],
        scratch: &mut [u8],
    ) -> Result<(), VolumeError> {
        self.span(first, data.len())?;
        let ss = self.sector_size();
        let chunk = (scratch.len() / ss) * ss;
        if chunk == 0 {
            return Err(VolumeError::Xts(XtsError::Length));
        }
        let pass = self.enter()?;
        let keys = self.keys(&pass)?;
        let mut sector = first;
        for part in data.chunks(chunk) {
            let s = &mut scratch[..part.len()];
            keys.xts.encrypt_sectors_to(sector, ss, part, s)?;
            let off = self.span(sector, part.len())?;
            self.dev.write_at(off, s)?;
            sector += (part.len() / ss) as u64;
        }
        Ok(())
    }

    /// Makes written sectors durable.
    pub fn flush(&self) -> Result<(), VolumeError> {
        self.dev.flush()?;
        Ok(())
    }

    /// Renews the lease if it is due, as the principal that attached: the
    /// key service decides again, exactly as for attach (and audits it).
    /// A refusal wipes the key at once and is returned; an unreachable
    /// service is tolerated until the lease's end plus the grace period,
    /// then the key is wiped (`LeaseExpired`). Call it from a timer well
    /// within `renew_before`; it does nothing when not due. Safe to call
    /// while other threads do I/O.
    pub fn maintain<K: Kms + ?Sized>(&self, kms: &mut K) -> Result<LeaseStatus, VolumeError> {
        if !self.lease.on() {
            return Ok(LeaseStatus::Off);
        }
        let pass = self.enter()?;
        let now = self.lease.clock.now();
        let expires_at = self.lease.expires_at();
        if now.saturating_add(self.lease.cfg.renew_before) < expires_at {
            return Ok(LeaseStatus::Valid { expires_at });
        }
        let (p, n) = &self.principal;
        let principal = core::str::from_utf8(&p[..*n]).unwrap_or("");
        let asked = self.copies.with(|c| {
            let h = c.current.view();
            let strings = h.context_strings();
            kms.check_decrypt(principal, h.blob, &strings.context())
        });
        match asked {
            Ok(()) => Ok(LeaseStatus::Renewed {
                expires_at: self.lease.extend(now),
            }),
            Err(KmsError::Unavailable) if now < self.lease.deadline() => {
                Ok(LeaseStatus::Unreachable {
                    expires_at,
                    deadline: self.lease.deadline(),
                })
            }
            Err(KmsError::Unavailable) => {
                self.wipe_inside(&pass);
                Err(VolumeError::LeaseExpired)
            }
            Err(e) => {
                self.wipe_inside(&pass);
                Err(VolumeError::Kms(e))
            }
        }
    }

    /// Rewraps the data key under `new_key_id` through the key service's
    /// re-encrypt (the plaintext key never leaves it), without touching
    /// data. The new wrap is unwrapped (as `principal`) and compared with
    /// this volume's key before anything is written: a service that answers
    /// with a wrong blob is `KeyMismatch` and the header stays as it was.
    /// Crash-safe: see the module docs. On a device error the new header
    /// may already be in one slot; [`AttachedVolume::header`] tells.
    pub fn rewrap<K: Kms + ?Sized>(
        &self,
        kms: &mut K,
        principal: &str,
        new_key_id: &str,
    ) -> Result<(), VolumeError> {
        let pass = self.enter()?;
        let mac = &self.keys(&pass)?.mac;
        self.copies.with(|c| {
            let old = c.current.view();
            let strings = old.context_strings();
            let ctx = strings.context();
            let mut blob = [0u8; MAX_BLOB];
            let n = kms.re_encrypt(principal, old.blob, &ctx, new_key_id, &ctx, &mut blob)?;
            let blob = blob.get(..n).ok_or(KmsError::Unavailable)?;
            let dek = kms.decrypt_data_key(principal, blob, &ctx)?;
            if dek.size() != old.params.suite.key_size()
                || !MacKey::derive(dek.as_bytes()).ct_eq(mac)
            {
                return Err(VolumeError::KeyMismatch);
            }
            let mut h = Header::new(old.params, blob)?;
            h.state = old.state;
            h.sequence = next_sequence(&old)?;
            h.seal_mac_with(mac)?;
            commit(&self.dev, c, &h)
        })
    }

    /// Marks the volume retired: first the key service is told (where it
    /// keeps tombstones, the context is never unwrapped again, whatever
    /// old header copy turns up), then the header records it
    /// (crash-safely, as for rewrap); attach is refused from then on. The
    /// volume stays attached until the caller detaches it. Returns whether
    /// the key service keeps a tombstone.
    pub fn mark_retired<K: Kms + ?Sized>(
        &self,
        kms: &mut K,
        principal: &str,
    ) -> Result<bool, VolumeError> {
        let pass = self.enter()?;
        let mac = &self.keys(&pass)?.mac;
        self.copies.with(|c| {
            let held = c.current.clone();
            let old = held.view();
            let strings = old.context_strings();
            let kept = kms.retire_context(principal, old.blob, &strings.context())?;
            let mut h = old;
            h.state = VolumeState::Retired;
            h.sequence = next_sequence(&old)?;
            h.seal_mac_with(mac)?;
            commit(&self.dev, c, &h)?;
            Ok(kept)
        })
    }

    /// Detaches: makes every written sector durable (flush), then wipes the
    /// key and returns the detached volume. If the flush fails the volume
    /// comes back still attached, with the error: nothing acknowledged is
    /// silently lost (dropping it then wipes the key without flushing).
    #[allow(clippy::result_large_err)] // the volume itself comes back on error
    pub fn detach(self) -> Result<Volume<D>, (AttachedVolume<D, C>, VolumeError)> {
        if let Err(e) = self.dev.flush() {
            return Err((self, VolumeError::Io(e)));
        }
        Ok(self.into_detached())
    }

    /// Detaches without flushing (after a device failure, to drop the key).
    pub fn detach_without_flush(self) -> Volume<D> {
        self.into_detached()
    }

    fn into_detached(self) -> Volume<D> {
        let AttachedVolume {
            dev,
            expected,
            copies,
            keys,
            ..
        } = self;
        // Dropping the keys zeroizes the engine and the MAC key.
        drop(keys);
        Volume {
            dev,
            copies: copies.into_inner(),
            expected,
        }
    }

    /// Retires the volume ([`AttachedVolume::mark_retired`]) and detaches.
    #[allow(clippy::result_large_err)] // the volume itself comes back on error
    pub fn retire<K: Kms + ?Sized>(
        self,
        kms: &mut K,
        principal: &str,
    ) -> Result<Volume<D>, (AttachedVolume<D, C>, VolumeError)> {
        if let Err(e) = self.mark_retired(kms, principal) {
            return Err((self, e));
        }
        self.detach()
    }
}

fn next_sequence(h: &Header<'_>) -> Result<u64, VolumeError> {
    Ok(h.sequence
        .checked_add(1)
        .ok_or(HeaderError::Malformed("sequence"))?)
}

/// Writes a new header crash-safely: first the slot not holding the
/// current copy, flush, then the other, flush. `c` follows what each slot
/// holds: a slot whose write or flush failed is unknown (`None`).
fn commit<D: BlockDevice>(dev: &D, c: &mut Copies, h: &Header<'_>) -> Result<(), VolumeError> {
    let new = OwnedHeader::new(h)?;
    let bytes = new.encode()?;
    let (old_slot, first) = (c.slot, 1 - c.slot);
    if let Err(e) = dev
        .write_at(slot_offset(first), &bytes)
        .and_then(|()| dev.flush())
    {
        c.set_other(None);
        return Err(e.into());
    }
    // The new copy is durable and newer: it is current from here on.
    let old = core::mem::replace(&mut c.current, new.clone());
    c.slot = first;
    c.set_other(Some(old));
    if let Err(e) = dev
        .write_at(slot_offset(old_slot), &bytes)
        .and_then(|()| dev.flush())
    {
        c.set_other(None);
        return Err(e.into());
    }
    c.set_other(Some(new));
    Ok(())
}
