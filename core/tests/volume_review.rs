//! Regressions for the volume defects found in the security review
//! (issue #13: header repair before authentication, foreign headers
//! adopted, unverified rewraps, detach without flush, create over an
//! existing volume), and the lease that bounds how long a revoked key
//! stays in use.

#![allow(clippy::cast_possible_truncation)] // test data

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envol::envelope::{Context, DataKey, MAX_BLOB};
use envol::header::{self, CipherSuite, Header, HeaderError, Params, SLOT_SIZE};
use envol::kms::audit::Outcome;
use envol::kms::policy::{Action, Policy};
use envol::kms::{Kms, KmsError, LocalKms};
use envol::volume::{
    AttachedVolume, BlockDevice, CreateOptions, FileDevice, IoError, LeaseConfig, LeaseStatus,
    MemDevice, Volume, VolumeError,
};
use envol::xts::KeySize;

mod common;
use common::{FakeClock, LEAST_PRIVILEGE, service};

fn kms() -> (LocalKms, Arc<AtomicU64>) {
    let (mut k, t) = service(21);
    for id in ["key-a", "key-b"] {
        k.create_key("operator", id, Policy::parse(LEAST_PRIVILEGE).unwrap())
            .unwrap();
    }
    (k, t)
}

fn params(id: u8) -> Params {
    Params {
        suite: CipherSuite::AesXts256Plain64,
        sector_size: 4096,
        data_offset: header::DEFAULT_DATA_OFFSET,
        volume_size: 64 * 4096,
        volume_id: [id; 16],
    }
}

fn device() -> MemDevice {
    MemDevice::new((header::DEFAULT_DATA_OFFSET + 64 * 4096) as usize)
}

fn det<D: BlockDevice, C: envol::kms::Clock>(v: AttachedVolume<D, C>) -> Volume<D> {
    v.detach().map_err(|(_, e)| e).unwrap()
}

fn sector(fill: u8) -> Vec<u8> {
    vec![fill; 4096]
}

/// A slot's bytes.
fn slot(dev: &mut MemDevice, i: usize) -> Vec<u8> {
    dev.state().bytes[i * SLOT_SIZE..(i + 1) * SLOT_SIZE].to_vec()
}

fn set_slot(dev: &mut MemDevice, i: usize, bytes: &[u8]) {
    dev.state().bytes[i * SLOT_SIZE..(i + 1) * SLOT_SIZE].copy_from_slice(bytes);
}

/// #4: a forged newest copy (checksum right, blob not this volume's) in
/// one slot never overwrites the good copy: attach falls back to the good
/// one and repairs the forged slot with it.
#[test]
fn forged_newest_copy_never_destroys_the_good_one() {
    let (mut kms, _) = kms();
    let v = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(1)).unwrap();
    v.write_sectors(3, &sector(0x33), &mut [0u8; 4096]).unwrap();
    let mut dev = det(v).into_device();
    let good = slot(&mut dev, 0);
    // Another volume's blob (same key) under this volume's parameters, with
    // a higher sequence number and a valid checksum.
    let other = det(Volume::create(device(), &mut kms, "hypervisor", "key-a", params(2)).unwrap())
        .into_device();
    let other_slot = other.bytes()[..SLOT_SIZE].to_vec();
    let theirs = Header::parse(&other_slot).unwrap();
    let mut forged = Header::parse(&good).unwrap();
    forged.blob = theirs.blob;
    forged.sequence = 9;
    let mut bytes = [0u8; SLOT_SIZE];
    forged.encode(&mut bytes).unwrap();
    for bad in 0..2 {
        let mut d = dev.clone();
        set_slot(&mut d, bad, &bytes);
        let v = Volume::open(d).unwrap();
        assert_eq!(v.header().sequence, 9, "the forged copy looks newest");
        let a = v.attach(&mut kms, "hypervisor").unwrap();
        let mut back = sector(0);
        a.read_sectors(3, &mut back).unwrap();
        assert_eq!(back, sector(0x33));
        let mut d = det(a).into_device();
        assert_eq!(slot(&mut d, 0), good, "slot A after attach (forged {bad})");
        assert_eq!(slot(&mut d, 1), good, "slot B after attach (forged {bad})");
    }
    // Both slots forged: refused, and nothing written.
    let mut d = dev.clone();
    set_slot(&mut d, 0, &bytes);
    set_slot(&mut d, 1, &bytes);
    let before = d.bytes();
    let (v, e) = Volume::open(d)
        .unwrap()
        .attach(&mut kms, "hypervisor")
        .unwrap_err();
    assert_eq!(e, VolumeError::Kms(KmsError::InvalidCiphertext));
    assert_eq!(v.into_device().bytes(), before);
}

/// #4: another volume's authentic header in one slot is never adopted: a
/// caller that does not say which volume it wants gets `WrongVolume` (and
/// nothing is written); one that does gets its own volume back, repaired.
#[test]
fn another_volumes_header_is_never_adopted() {
    let (mut kms, _) = kms();
    let x = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(3)).unwrap();
    x.write_sectors(0, &sector(0x58), &mut [0u8; 4096]).unwrap();
    let mut xdev = det(x).into_device();
    let y = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(4)).unwrap();
    for _ in 0..3 {
        y.rewrap(&mut kms, "hypervisor", "key-a").unwrap();
    }
    let mut ydev = det(y).into_device();
    let x_good = slot(&mut xdev, 0);
    let mut d = xdev.clone();
    set_slot(&mut d, 1, &slot(&mut ydev, 0));
    let before = d.bytes();

    let (d, e) = Volume::open(d).unwrap_err();
    assert_eq!(e, VolumeError::Header(HeaderError::WrongVolume));
    assert_eq!(d.bytes(), before, "nothing written");

    let v = Volume::open_expecting(d, [3; 16]).unwrap();
    assert_eq!(v.header().params.volume_id, [3; 16]);
    let a = v.attach(&mut kms, "hypervisor").unwrap();
    let mut back = sector(0);
    a.read_sectors(0, &mut back).unwrap();
    assert_eq!(back, sector(0x58));
    let mut d = det(a).into_device();
    assert_eq!(slot(&mut d, 1), x_good, "slot B repaired with X's copy");

    let (_, e) = Volume::open_expecting(xdev, [4; 16]).unwrap_err();
    assert_eq!(e, VolumeError::Header(HeaderError::WrongVolume));
}

/// A key service that forwards to `LocalKms`, but can lie on re-encrypt
/// (answering with a fresh data key's blob) or be unreachable.
struct Faulty<'a> {
    inner: &'a mut LocalKms,
    lie: bool,
    down: Cell<bool>,
}

impl Kms for Faulty<'_> {
    fn generate_data_key(
        &mut self,
        p: &str,
        k: &str,
        s: KeySize,
        c: &Context<'_>,
        o: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        self.inner.generate_data_key(p, k, s, c, o)
    }
    fn generate_data_key_without_plaintext(
        &mut self,
        p: &str,
        k: &str,
        s: KeySize,
        c: &Context<'_>,
        o: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner
            .generate_data_key_without_plaintext(p, k, s, c, o)
    }
    fn decrypt_data_key(
        &mut self,
        p: &str,
        b: &[u8],
        c: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        if self.down.get() {
            return Err(KmsError::Unavailable);
        }
        self.inner.decrypt_data_key(p, b, c)
    }
    fn re_encrypt(
        &mut self,
        p: &str,
        b: &[u8],
        sc: &Context<'_>,
        k: &str,
        dc: &Context<'_>,
        o: &mut [u8],
    ) -> Result<usize, KmsError> {
        if self.lie {
            // A valid blob, for the right context, of another data key.
            return self
                .inner
                .generate_data_key_without_plaintext(p, k, KeySize::Aes256, dc, o);
        }
        self.inner.re_encrypt(p, b, sc, k, dc, o)
    }
    fn encrypt(
        &mut self,
        p: &str,
        k: &str,
        c: &Context<'_>,
        t: &[u8],
        o: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner.encrypt(p, k, c, t, o)
    }
    fn decrypt(
        &mut self,
        p: &str,
        b: &[u8],
        c: &Context<'_>,
        o: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner.decrypt(p, b, c, o)
    }
}

/// #7: a key service whose re-encrypt answers with a wrong blob leaves
/// the header as it was (before, both copies were replaced and the volume
/// could never attach again).
#[test]
fn rewrap_with_a_lying_key_service_changes_nothing() {
    let (mut kms, _) = kms();
    let v = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(5)).unwrap();
    v.write_sectors(1, &sector(0x77), &mut [0u8; 4096]).unwrap();
    let before = v.device().bytes();
    let mut liar = Faulty {
        inner: &mut kms,
        lie: true,
        down: Cell::new(false),
    };
    assert_eq!(
        v.rewrap(&mut liar, "hypervisor", "key-b"),
        Err(VolumeError::KeyMismatch)
    );
    assert_eq!(v.device().bytes(), before, "no header copy was written");
    assert_eq!(v.header().view().key_id(), "key-a");
    // An honest rewrap still works, and the volume reattaches.
    v.rewrap(&mut kms, "hypervisor", "key-b").unwrap();
    let a = det(v).attach(&mut kms, "hypervisor").unwrap();
    let mut back = sector(0);
    a.read_sectors(1, &mut back).unwrap();
    assert_eq!(back, sector(0x77));
    assert_eq!(a.header().view().key_id(), "key-b");
}

/// A memory device whose flush can be made to fail.
struct FlakyFlush {
    inner: MemDevice,
    fail: Cell<bool>,
    flushes_after_last_write: Cell<usize>,
}

impl BlockDevice for FlakyFlush {
    fn read_at(&self, o: u64, b: &mut [u8]) -> Result<(), IoError> {
        self.inner.read_at(o, b)
    }
    fn write_at(&self, o: u64, b: &[u8]) -> Result<(), IoError> {
        self.flushes_after_last_write.set(0);
        self.inner.write_at(o, b)
    }
    fn flush(&self) -> Result<(), IoError> {
        if self.fail.get() {
            return Err(IoError(5));
        }
        self.flushes_after_last_write
            .set(self.flushes_after_last_write.get() + 1);
        self.inner.flush()
    }
}

/// #11: detach makes every acknowledged write durable, and a failed flush
/// keeps the volume attached (key and all) so nothing is silently lost.
#[test]
fn detach_flushes_and_a_failed_flush_keeps_the_volume_attached() {
    let (mut kms, _) = kms();
    let dev = FlakyFlush {
        inner: device(),
        fail: Cell::new(false),
        flushes_after_last_write: Cell::new(0),
    };
    let v = Volume::create(dev, &mut kms, "hypervisor", "key-a", params(6)).unwrap();
    v.write_sectors(2, &sector(0x22), &mut [0u8; 4096]).unwrap();
    assert_eq!(v.device().flushes_after_last_write.get(), 0);
    v.device().fail.set(true);
    let (v, e) = v.detach().unwrap_err();
    assert_eq!(e, VolumeError::Io(IoError(5)));
    let mut back = sector(0);
    v.read_sectors(2, &mut back).unwrap();
    assert_eq!(back, sector(0x22), "still attached after the failed flush");
    v.device().fail.set(false);
    let d = det(v);
    assert_eq!(d.device().flushes_after_last_write.get(), 1);
    // A detached volume can still be flushed.
    d.flush().unwrap();
}

/// #12: create refuses a device that holds a volume (either copy) and an
/// all-zero volume id; overwriting is an explicit option.
#[test]
fn create_refuses_an_existing_volume_and_zero_ids() {
    let (mut kms, _) = kms();
    let v = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(7)).unwrap();
    v.write_sectors(0, &sector(0x11), &mut [0u8; 4096]).unwrap();
    let dev = det(v).into_device();
    let before = dev.bytes();
    for keep in [None, Some(0), Some(1)] {
        let mut d = dev.clone();
        if let Some(k) = keep {
            // Only one copy left (the other zeroed): still a volume.
            set_slot(&mut d, 1 - k, &[0u8; SLOT_SIZE]);
        }
        let d_before = d.bytes();
        let e = Volume::create(d.clone(), &mut kms, "hypervisor", "key-a", params(8))
            .map(drop)
            .unwrap_err();
        assert_eq!(e, VolumeError::Exists, "{keep:?}");
        assert_eq!(d.bytes(), d_before);
    }
    let mut zero = params(9);
    zero.volume_id = [0; 16];
    let e = Volume::create(device(), &mut kms, "hypervisor", "key-a", zero)
        .map(drop)
        .unwrap_err();
    assert_eq!(e, VolumeError::Header(HeaderError::Malformed("volume id")));
    // On purpose: the old volume is gone.
    let opts = CreateOptions { overwrite: true };
    let v = Volume::create_with(dev, &mut kms, "hypervisor", "key-a", params(8), &opts).unwrap();
    assert_ne!(v.device().bytes()[..SLOT_SIZE], before[..SLOT_SIZE]);
}

fn leased(
    kms: &mut LocalKms,
    t: &Arc<AtomicU64>,
    id: u8,
    cfg: LeaseConfig,
) -> AttachedVolume<MemDevice, FakeClock> {
    let v = Volume::create(device(), kms, "hypervisor", "key-a", params(id)).unwrap();
    v.write_sectors(0, &sector(0x5e), &mut [0u8; 4096]).unwrap();
    det(v)
        .attach(kms, "hypervisor")
        .unwrap()
        .with_lease(cfg, FakeClock(t.clone()))
}

fn decrypts(kms: &LocalKms) -> usize {
    kms.audit_log()
        .iter()
        .filter(|e| e.action == Action::Decrypt && e.outcome == Outcome::Allowed)
        .count()
}

/// The lease is renewed when due, with the key service's consent (audited
/// as a decrypt), and not before.
#[test]
fn lease_renews_when_due() {
    let (mut kms, t) = kms();
    let v = leased(&mut kms, &t, 10, LeaseConfig::new(300, 60));
    let start = t.load(Ordering::SeqCst);
    assert_eq!(v.lease_expires_at(), Some(start + 300));
    let n = decrypts(&kms);
    t.store(start + 100, Ordering::SeqCst);
    assert_eq!(
        v.maintain(&mut kms),
        Ok(LeaseStatus::Valid {
            expires_at: start + 300
        })
    );
    assert_eq!(decrypts(&kms), n, "no call to the key service before due");
    t.store(start + 160, Ordering::SeqCst);
    assert_eq!(
        v.maintain(&mut kms),
        Ok(LeaseStatus::Renewed {
            expires_at: start + 460
        })
    );
    assert_eq!(decrypts(&kms), n + 1, "the renewal is audited");
    t.store(start + 400, Ordering::SeqCst);
    let mut b = sector(0);
    v.read_sectors(0, &mut b).unwrap();
    assert_eq!(b, sector(0x5e));
}

/// A refused renewal (key disabled, grant revoked, policy changed) wipes
/// the key at once: every later call fails, nothing half done.
#[test]
fn lease_refusal_wipes_the_key_within_one_lease() {
    let (mut kms, t) = kms();
    let start = t.load(Ordering::SeqCst);
    let v = leased(&mut kms, &t, 11, LeaseConfig::new(300, 600));
    kms.disable_key("admin", "key-a").unwrap();
    // Still usable until the renewal is due...
    let mut b = sector(0);
    v.read_sectors(0, &mut b).unwrap();
    t.store(start + 150, Ordering::SeqCst);
    assert_eq!(
        v.maintain(&mut kms),
        Err(VolumeError::Kms(KmsError::Disabled))
    );
    assert!(!v.is_live());
    assert_eq!(v.read_sectors(0, &mut b), Err(VolumeError::LeaseExpired));
    assert_eq!(
        v.write_sectors(0, &sector(1), &mut [0u8; 4096]),
        Err(VolumeError::LeaseExpired)
    );
    assert_eq!(v.encrypt_sectors(0, &mut b), Err(VolumeError::LeaseExpired));
    assert_eq!(v.maintain(&mut kms), Err(VolumeError::LeaseExpired));
    assert_eq!(v.backend(), None);
    // Detaching still works (nothing to wipe twice), and so does a new
    // attach once the key is enabled again.
    let d = det(v);
    kms.enable_key("admin", "key-a").unwrap();
    let a = d.attach(&mut kms, "hypervisor").unwrap();
    a.read_sectors(0, &mut b).unwrap();
    assert_eq!(b, sector(0x5e));

    // The same through a revoked grant.
    let (mut kms, t) = self::kms();
    kms.put_key_policy(
        "admin",
        "key-a",
        Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Envol":"admin"},"Action":"kms:*"},
            {"Effect":"Allow","Principal":{"Envol":"hypervisor"},"Action":"kms:GenerateDataKey"}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let g = kms
        .create_grant(
            "admin",
            "key-a",
            "hypervisor",
            &[Action::Decrypt],
            None,
            None,
        )
        .unwrap();
    let v = leased(&mut kms, &t, 12, LeaseConfig::new(300, 600));
    kms.revoke_grant("admin", "key-a", &g).unwrap();
    t.fetch_add(150, Ordering::SeqCst);
    assert_eq!(
        v.maintain(&mut kms),
        Err(VolumeError::Kms(KmsError::AccessDenied))
    );
    assert_eq!(v.read_sectors(0, &mut b), Err(VolumeError::LeaseExpired));
}

/// An unreachable key service is given the grace period past the lease's
/// end, then the key is wiped.
#[test]
fn lease_tolerates_an_unreachable_service_for_the_grace_period() {
    let (mut kms, t) = kms();
    let start = t.load(Ordering::SeqCst);
    let v = leased(&mut kms, &t, 13, LeaseConfig::new(300, 120));
    let mut down = Faulty {
        inner: &mut kms,
        lie: false,
        down: Cell::new(true),
    };
    let mut b = sector(0);
    for at in [150, 299, 300, 419] {
        t.store(start + at, Ordering::SeqCst);
        assert_eq!(
            v.maintain(&mut down),
            Ok(LeaseStatus::Unreachable {
                expires_at: start + 300,
                deadline: start + 420
            }),
            "at +{at}"
        );
        v.read_sectors(0, &mut b).unwrap();
    }
    // Back in time: renewed, a new lease.
    down.down.set(false);
    assert_eq!(
        v.maintain(&mut down),
        Ok(LeaseStatus::Renewed {
            expires_at: start + 719
        })
    );
    down.down.set(true);
    t.store(start + 719 + 120, Ordering::SeqCst);
    assert_eq!(v.maintain(&mut down), Err(VolumeError::LeaseExpired));
    assert_eq!(v.read_sectors(0, &mut b), Err(VolumeError::LeaseExpired));
}

/// Without any renewal attempt at all, the first data call past the
/// deadline wipes the key.
#[test]
fn lease_deadline_holds_without_maintenance() {
    let (mut kms, t) = kms();
    let v = leased(&mut kms, &t, 14, LeaseConfig::new(60, 30));
    let mut b = sector(0);
    t.fetch_add(89, Ordering::SeqCst);
    v.read_sectors(0, &mut b).unwrap();
    t.fetch_add(1, Ordering::SeqCst);
    assert!(v.is_live());
    assert_eq!(v.read_sectors(0, &mut b), Err(VolumeError::LeaseExpired));
    assert!(!v.is_live());
}

/// Retire tells the key service (a tombstone) before the header: a header
/// copy restored from a backup cannot bring the volume back.
#[test]
fn retired_volume_stays_retired_with_an_old_header_restored() {
    let (mut kms, _) = kms();
    let v = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(15)).unwrap();
    let backup = v.device().bytes()[..2 * SLOT_SIZE].to_vec();
    let retired = v.retire(&mut kms, "admin").map_err(|(_, e)| e).unwrap();
    let mut dev = retired.into_device();
    dev.state().bytes[..2 * SLOT_SIZE].copy_from_slice(&backup);
    let (_, e) = Volume::open(dev)
        .unwrap()
        .attach(&mut kms, "hypervisor")
        .unwrap_err();
    assert_eq!(e, VolumeError::Retired);
    let mut blob = [0u8; MAX_BLOB];
    let ctx_strings = Header::parse(&backup).unwrap().context_strings();
    assert_eq!(
        kms.generate_data_key(
            "hypervisor",
            "key-a",
            KeySize::Aes256,
            &ctx_strings.context(),
            &mut blob
        )
        .map(drop),
        Err(KmsError::VolumeRetired)
    );
}

fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("envol-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Many threads share one attached volume: each writes and reads its own
/// sectors through the shared data path while another renews the lease.
/// Then the key is revoked while they run: every call either completed
/// (its sector reads back whole) or failed with `LeaseExpired`.
#[test]
fn threads_share_one_volume_and_race_a_revocation() {
    let (mut kms, t) = kms();
    let path = temp_file("threads.img");
    let len = header::DEFAULT_DATA_OFFSET + 64 * 4096;
    let dev = FileDevice::create(&path, len).unwrap();
    let v = Volume::create(dev, &mut kms, "hypervisor", "key-a", params(16)).unwrap();
    let v = Arc::new(v.with_lease(LeaseConfig::new(100, 0), FakeClock(t.clone())));
    let kms = Arc::new(std::sync::Mutex::new(kms));
    let progress = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let v = v.clone();
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut scratch = vec![0u8; 4096];
                let mut done = 0u32;
                // Until the revocation stops it (never by running out of
                // rounds, however the threads are scheduled).
                for round in 0..u32::MAX {
                    let s = u64::from(w) * 16 + u64::from(round % 16);
                    let data = sector(w.wrapping_mul(31).wrapping_add(round as u8));
                    match v.write_sectors(s, &data, &mut scratch) {
                        Ok(()) => {
                            let mut back = sector(0);
                            match v.read_sectors(s, &mut back) {
                                Ok(()) => assert_eq!(back, data),
                                Err(e) => assert_eq!(e, VolumeError::LeaseExpired),
                            }
                            done += 1;
                            progress.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            assert_eq!(e, VolumeError::LeaseExpired);
                            return done;
                        }
                    }
                }
                panic!("writer {w} was never stopped by the revocation")
            })
        })
        .collect();
    // Renewals while they run, then a revocation once they are well under
    // way.
    for step in 0..20 {
        while step <= 15 && progress.load(Ordering::SeqCst) < 400 * (step + 1) {
            std::thread::yield_now();
        }
        t.fetch_add(60, Ordering::SeqCst);
        let mut k = kms.lock().unwrap();
        if step == 15 {
            k.disable_key("admin", "key-a").unwrap();
        }
        let r = v.maintain(&mut *k);
        if step < 15 {
            assert!(matches!(r, Ok(LeaseStatus::Renewed { .. })), "{r:?}");
        }
        drop(k);
        std::thread::yield_now();
    }
    let done: u32 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    // Every writer ran until the revocation stopped it (each returned
    // on LeaseExpired), after the 6,400 writes the revocation waited for.
    assert!(done >= 6400, "{done}");
    assert!(!v.is_live());
    let v = Arc::try_unwrap(v).map_err(|_| ()).unwrap();
    let d = det(v);
    // Every sector holds a whole write of its own thread: re-attach and
    // check each decrypts to one uniform fill.
    let mut k = kms.lock().unwrap();
    k.enable_key("admin", "key-a").unwrap();
    let a = d.attach(&mut *k, "hypervisor").unwrap();
    for s in 0..64u64 {
        let mut back = sector(0);
        a.read_sectors(s, &mut back).unwrap();
        assert!(back.iter().all(|&b| b == back[0]), "sector {s} torn");
    }
    drop(a);
    let _ = std::fs::remove_file(&path);
}
