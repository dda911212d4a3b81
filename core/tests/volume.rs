//! The volume lifecycle end to end over `LocalKms` and an in-memory device:
//! create, write, detach, attach, rewrap (torn at every byte), and every
//! refusal leaving the volume untouched.

#![allow(clippy::cast_possible_truncation)] // test data

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use aes::cipher::KeyInit;
use envol::header::{self, CipherSuite, Header, HeaderError, Params, SLOT_SIZE};
use envol::kms::policy::Policy;
use envol::kms::{Kms, KmsError, LocalKms};
use envol::volume::{AttachedVolume, BlockDevice, MemDevice, Volume, VolumeError};
use proptest::prelude::*;

mod common;
use common::{FakeClock, SeededRng};

const POLICY: &str = r#"{"Statement":[
 {"Effect":"Allow","Principal":{"Envol":"hypervisor"},
  "Action":["kms:GenerateDataKey*","kms:Decrypt","kms:ReEncrypt*"],
  "Condition":{"StringLike":{"kms:EncryptionContext:volume":"vol-*"}}},
 {"Effect":"Allow","Principal":{"Envol":"admin"},"Action":"kms:*"},
 {"Effect":"Deny","Principal":{"Envol":"admin"},
  "Action":["kms:Decrypt","kms:GenerateDataKey*","kms:ReEncrypt*","kms:Encrypt"]}]}"#;

fn kms() -> LocalKms {
    let mut k = LocalKms::new(
        Box::new(SeededRng(11)),
        Box::new(FakeClock(Arc::new(AtomicU64::new(1_700_000_000)))),
        None,
    );
    k.set_service_policy("operator", Policy::allow_all(&["operator"]))
        .unwrap();
    k.create_key("operator", "key-a", Policy::parse(POLICY).unwrap())
        .unwrap();
    k.create_key("operator", "key-b", Policy::parse(POLICY).unwrap())
        .unwrap();
    k
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

/// Detaches (flushing), which cannot fail on a memory device.
fn det<D: BlockDevice>(v: AttachedVolume<D>) -> Volume<D> {
    v.detach().map_err(|(_, e)| e).unwrap()
}

/// The device's bytes, after detaching.
fn raw_of(v: AttachedVolume<MemDevice>) -> MemDevice {
    det(v).into_device()
}

fn guest_data(n: usize) -> Vec<u8> {
    (0..n * 4096)
        .map(|i| b"guest secret data! "[i % 19])
        .collect()
}

#[test]
fn lifecycle_create_write_detach_attach() {
    let mut kms = kms();
    let vol = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(1)).unwrap();
    let data = guest_data(8);
    let mut scratch = vec![0u8; 3 * 4096];
    vol.write_sectors(10, &data, &mut scratch).unwrap();
    let mut back = vec![0u8; data.len()];
    vol.read_sectors(10, &mut back).unwrap();
    assert_eq!(back, data);
    // Out of range and partial sectors are refused.
    assert_eq!(
        vol.read_sectors(60, &mut back).unwrap_err(),
        VolumeError::OutOfRange
    );
    assert!(vol.read_sectors(0, &mut back[..100]).is_err());

    let raw = raw_of(vol);
    let bytes = raw.bytes();
    assert!(
        !bytes.windows(12).any(|w| w == b"guest secret"),
        "plaintext on disk"
    );

    // The data area is plain aes-xts-plain64 under the data key: check with
    // the independent xts-mode crate.
    let h = Header::parse(&bytes[..SLOT_SIZE]).unwrap();
    let strings = h.context_strings();
    let dek = kms
        .decrypt_data_key("hypervisor", h.blob, &strings.context())
        .unwrap();
    let k = dek.as_bytes();
    let x = xts_mode::Xts128::<aes::Aes256>::new(
        aes::Aes256::new_from_slice(&k[..32]).unwrap(),
        aes::Aes256::new_from_slice(&k[32..]).unwrap(),
    );
    let off = header::DEFAULT_DATA_OFFSET as usize + 10 * 4096;
    let mut ct = bytes[off..off + data.len()].to_vec();
    x.decrypt_area(&mut ct, 4096, 10, xts_mode::get_tweak_default);
    assert_eq!(ct, data);

    // Start again: attach as the hypervisor and read back.
    let v = Volume::open(raw).unwrap();
    let vol = v.attach(&mut kms, "hypervisor").unwrap();
    let mut back = vec![0u8; data.len()];
    vol.read_sectors(10, &mut back).unwrap();
    assert_eq!(back, data);
}

#[test]
fn refusals_leave_the_volume_untouched() {
    let mut kms = kms();
    let vol = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(2)).unwrap();
    let raw = raw_of(vol);
    let before = raw.bytes();

    // Wrong principal.
    let v = Volume::open(raw).unwrap();
    let (v, e) = v.attach(&mut kms, "admin").unwrap_err();
    assert_eq!(e, VolumeError::Kms(KmsError::AccessDenied));
    let (v, e) = v.attach(&mut kms, "mallory").unwrap_err();
    assert_eq!(e, VolumeError::Kms(KmsError::AccessDenied));
    // Disabled key, then pending deletion.
    kms.disable_key("admin", "key-a").unwrap();
    let (v, e) = v.attach(&mut kms, "hypervisor").unwrap_err();
    assert_eq!(e, VolumeError::Kms(KmsError::Disabled));
    kms.enable_key("admin", "key-a").unwrap();
    kms.schedule_key_deletion("admin", "key-a", 7, true)
        .unwrap();
    let (v, e) = v.attach(&mut kms, "hypervisor").unwrap_err();
    assert_eq!(e, VolumeError::Kms(KmsError::PendingDeletion));
    kms.cancel_key_deletion("admin", "key-a").unwrap();
    kms.enable_key("admin", "key-a").unwrap();
    let raw = v.into_device();
    assert_eq!(raw.bytes(), before, "refused attaches must not write");
    assert!(
        Volume::open(raw)
            .unwrap()
            .attach(&mut kms, "hypervisor")
            .is_ok()
    );
}

#[test]
fn blob_from_another_volume_and_edited_headers_are_refused() {
    let mut kms = kms();
    let a = raw_of(Volume::create(device(), &mut kms, "hypervisor", "key-a", params(3)).unwrap());
    let b = raw_of(Volume::create(device(), &mut kms, "hypervisor", "key-a", params(4)).unwrap());
    let (a_bytes, b_bytes) = (a.bytes(), b.bytes());

    // Volume B's header carrying volume A's wrapped key (checksum fixed up).
    let ha = Header::parse(&a_bytes[..SLOT_SIZE]).unwrap();
    let hb = Header::parse(&b_bytes[..SLOT_SIZE]).unwrap();
    let mut forged = hb;
    forged.blob = ha.blob;
    let mut dev = b.clone();
    let mut slot = [0u8; SLOT_SIZE];
    forged.encode(&mut slot).unwrap();
    dev.state().bytes[..SLOT_SIZE].copy_from_slice(&slot);
    dev.state().bytes[SLOT_SIZE..2 * SLOT_SIZE].copy_from_slice(&slot);
    let (_, e) = Volume::open(dev)
        .unwrap()
        .attach(&mut kms, "hypervisor")
        .unwrap_err();
    assert_eq!(e, VolumeError::Kms(KmsError::InvalidCiphertext));

    // Edited parameters (sector size, data offset, volume size) with a
    // fixed-up checksum: the context no longer matches the wrap.
    for edit in 0..3 {
        let mut h = ha;
        match edit {
            0 => h.params.sector_size = 512,
            1 => h.params.data_offset += 4096,
            _ => h.params.volume_size -= 4096,
        }
        let mut dev = a.clone();
        h.encode(&mut slot).unwrap();
        dev.state().bytes[..SLOT_SIZE].copy_from_slice(&slot);
        dev.state().bytes[SLOT_SIZE..2 * SLOT_SIZE].copy_from_slice(&slot);
        let (_, e) = Volume::open(dev)
            .unwrap()
            .attach(&mut kms, "hypervisor")
            .unwrap_err();
        assert_eq!(
            e,
            VolumeError::Kms(KmsError::InvalidCiphertext),
            "edit {edit}"
        );
    }
    // Edited state or sequence: the wrap still opens, the header MAC does
    // not. With the good copy still in slot B, attach falls back to it and
    // then repairs slot A; with both copies edited it is refused.
    let mut h = ha;
    h.sequence += 5;
    let mut dev = a.clone();
    h.encode(&mut slot).unwrap();
    dev.state().bytes[..SLOT_SIZE].copy_from_slice(&slot);
    let back = raw_of(
        Volume::open(dev)
            .unwrap()
            .attach(&mut kms, "hypervisor")
            .unwrap(),
    );
    assert_eq!(back.bytes()[..2 * SLOT_SIZE], a_bytes[..2 * SLOT_SIZE]);
    let mut dev = a.clone();
    dev.state().bytes[..SLOT_SIZE].copy_from_slice(&slot);
    dev.state().bytes[SLOT_SIZE..2 * SLOT_SIZE].copy_from_slice(&slot);
    let (_, e) = Volume::open(dev)
        .unwrap()
        .attach(&mut kms, "hypervisor")
        .unwrap_err();
    assert_eq!(e, VolumeError::Header(HeaderError::Tampered));

    // Retired volumes refuse to attach; un-retiring by editing is tampering.
    let mut kms2 = kms;
    let vol = Volume::open(a.clone())
        .unwrap()
        .attach(&mut kms2, "hypervisor")
        .unwrap();
    let retired = vol.retire(&mut kms2, "admin").map_err(|(_, e)| e).unwrap();
    let raw = retired.into_device();
    let (v, e) = Volume::open(raw)
        .unwrap()
        .attach(&mut kms2, "hypervisor")
        .unwrap_err();
    assert_eq!(e, VolumeError::Retired);
    let raw = v.into_device();
    let raw_bytes = raw.bytes();
    let mut h = Header::parse(&raw_bytes[..SLOT_SIZE]).unwrap();
    h.state = envol::header::VolumeState::Active;
    let mut dev = raw.clone();
    h.encode(&mut slot).unwrap();
    dev.state().bytes[..SLOT_SIZE].copy_from_slice(&slot);
    dev.state().bytes[SLOT_SIZE..2 * SLOT_SIZE].copy_from_slice(&slot);
    // The key service's tombstone refuses the context before the header
    // is even looked at.
    let (_, e) = Volume::open(dev)
        .unwrap()
        .attach(&mut kms2, "hypervisor")
        .unwrap_err();
    assert_eq!(e, VolumeError::Retired);
}

#[test]
fn damaged_copies_are_survived_and_repaired() {
    let mut kms = kms();
    let raw = raw_of(Volume::create(device(), &mut kms, "hypervisor", "key-a", params(5)).unwrap());
    let raw_bytes = raw.bytes();
    for slot in 0..2 {
        let mut dev = raw.clone();
        dev.state().bytes[slot * SLOT_SIZE + 100] ^= 0xff;
        let v = Volume::open(dev).unwrap();
        let dev = raw_of(v.attach(&mut kms, "hypervisor").unwrap());
        assert_eq!(
            dev.bytes()[..2 * SLOT_SIZE],
            raw_bytes[..2 * SLOT_SIZE],
            "slot {slot} repaired"
        );
    }
    let mut dev = raw.clone();
    dev.state().bytes[100] ^= 1;
    dev.state().bytes[SLOT_SIZE + 100] ^= 1;
    let (_, e) = Volume::open(dev).unwrap_err();
    assert_eq!(e, VolumeError::Header(HeaderError::BothCorrupt));
    let (_, e) = Volume::open(MemDevice::new(1 << 20)).unwrap_err();
    assert_eq!(e, VolumeError::Header(HeaderError::BadMagic));
}

#[test]
fn rewrap_torn_at_every_byte_opens_with_old_or_new_wrap() {
    let mut kms = kms();
    let vol = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(6)).unwrap();
    let data = guest_data(2);
    let mut scratch = vec![0u8; 4096];
    vol.write_sectors(0, &data, &mut scratch).unwrap();
    let base = raw_of(vol);

    // A clean rewrap writes the header twice.
    let mut probe = base.clone();
    probe.state().writes = 0;
    let v = Volume::open(&probe)
        .unwrap()
        .attach(&mut kms, "hypervisor")
        .unwrap();
    v.rewrap(&mut kms, "hypervisor", "key-b").unwrap();
    drop(v);
    assert_eq!(probe.state().writes, 2);

    let mut tested = 0;
    let (mut saw_old, mut saw_new) = (0, 0);
    for write in 0..2 {
        for torn_at in 0..=SLOT_SIZE {
            let mut dev = base.clone();
            let v = Volume::open(&dev)
                .unwrap()
                .attach(&mut kms, "hypervisor")
                .unwrap();
            dev.with_state(|s| {
                s.writes = 0;
                s.fail_after_writes = Some(write);
                s.torn_at = torn_at;
            });
            assert!(v.rewrap(&mut kms, "hypervisor", "key-b").is_err());
            drop(v);
            dev.state().fail_after_writes = None;
            let v = Volume::open(&dev).unwrap();
            match v.header().key_id() {
                "key-a" => saw_old += 1,
                "key-b" => saw_new += 1,
                other => panic!("unexpected key {other}"),
            }
            let v = v.attach(&mut kms, "hypervisor").unwrap();
            let mut back = vec![0u8; data.len()];
            v.read_sectors(0, &mut back).unwrap();
            assert_eq!(back, data, "write {write} torn at {torn_at}");
            tested += 1;
        }
    }
    assert_eq!(tested, 2 * (SLOT_SIZE + 1));
    assert!(saw_old > 0 && saw_new > 0, "old {saw_old} new {saw_new}");
    println!(
        "torn rewrap: {tested} tear points, {saw_old} opened with the old wrap, {saw_new} with the new"
    );
}

proptest! {
    #[test]
    fn header_parse_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(h) = Header::parse(&bytes) {
            let mut out = vec![0u8; SLOT_SIZE];
            let n = h.encode(&mut out).unwrap();
            prop_assert_eq!(&out[..n], &bytes[..n]);
        }
    }

    #[test]
    fn mutated_headers_never_panic(pos in 0usize..400, val in any::<u8>(), fix_sum in any::<bool>()) {
        let mut kms = kms();
        let raw = raw_of(Volume::create(device(), &mut kms, "hypervisor", "key-a", params(7)).unwrap());
        let mut slot = raw.bytes()[..SLOT_SIZE].to_vec();
        slot[pos] = val;
        if fix_sum {
            // Recompute the checksum so the mutation reaches the deeper fields.
            let len = u32::from_le_bytes([slot[12], slot[13], slot[14], slot[15]]) as usize;
            if (100..=SLOT_SIZE).contains(&len) {
                use sha2::Digest;
                let sum: [u8; 32] = sha2::Sha256::digest(&slot[..len - 32]).into();
                slot[len - 32..len].copy_from_slice(&sum);
            }
        }
        let mut dev = raw.clone();
        dev.state().bytes[..SLOT_SIZE].copy_from_slice(&slot);
        dev.state().bytes[SLOT_SIZE..2 * SLOT_SIZE].copy_from_slice(&slot);
        if let Ok(v) = Volume::open(dev)
            && let Ok(a) = v.attach(&mut kms, "hypervisor")
        {
            // Attached only if the parameters are the authentic ones.
            prop_assert_eq!(*a.params(), params(7));
            let mut b = vec![0u8; 4096];
            a.read_sectors(0, &mut b).unwrap();
        }
    }
}
