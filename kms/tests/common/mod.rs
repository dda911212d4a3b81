//! What every key service must do for a volume, whatever is behind it.

#![allow(dead_code, clippy::cast_possible_truncation)] // test data

use envol::envelope::{Algorithm, WrappedKey};
use envol::header::{self, CipherSuite, Header, Params, SLOT_SIZE};
use envol::kms::{Kms, KmsError};
use envol::volume::{MemDevice, Volume, VolumeError};

pub fn params(id: u8) -> Params {
    Params {
        suite: CipherSuite::AesXts256Plain64,
        sector_size: 4096,
        data_offset: header::DEFAULT_DATA_OFFSET,
        volume_size: 16 * 4096,
        volume_id: [id; 16],
    }
}

pub fn device() -> MemDevice {
    MemDevice::new((header::DEFAULT_DATA_OFFSET + 16 * 4096) as usize)
}

fn guest_data() -> Vec<u8> {
    (0..4 * 4096).map(|i| b"guest data, "[i % 12]).collect()
}

/// The whole lifecycle through `kms`: create under `key_a`, write, detach,
/// attach, read back, rewrap to `key_b`, detach, attach, read back; a header
/// carrying another volume's wrapped key is refused. `alg` is what the
/// header's blob must say; `key_a_id`/`key_b_id` what it must name.
pub fn volume_lifecycle<K: Kms>(
    kms: &mut K,
    principal: &str,
    key_a: &str,
    key_b: &str,
    alg: Algorithm,
    id_base: u8,
) -> (String, String) {
    let data = guest_data();
    let mut scratch = vec![0u8; 2 * 4096];
    let vol = Volume::create(device(), kms, principal, key_a, params(id_base)).unwrap();
    vol.write_sectors(3, &data, &mut scratch).unwrap();
    let raw = vol.detach().map_err(|(_, e)| e).unwrap().into_device();
    assert!(
        !raw.bytes().windows(10).any(|w| w == b"guest data"),
        "plaintext on disk"
    );
    let raw_bytes = raw.bytes();
    let h = Header::parse(&raw_bytes[..SLOT_SIZE]).unwrap();
    let w = WrappedKey::parse(h.blob).unwrap();
    assert_eq!(w.algorithm(), alg);
    let first_key = w.key_id().to_string();

    let vol = Volume::open(raw).unwrap().attach(kms, principal).unwrap();
    let mut back = vec![0u8; data.len()];
    vol.read_sectors(3, &mut back).unwrap();
    assert_eq!(back, data);

    vol.rewrap(kms, principal, key_b).unwrap();
    let raw = vol.detach().map_err(|(_, e)| e).unwrap().into_device();
    let raw_bytes = raw.bytes();
    let h = Header::parse(&raw_bytes[..SLOT_SIZE]).unwrap();
    let w = WrappedKey::parse(h.blob).unwrap();
    assert_eq!(w.algorithm(), alg);
    let second_key = w.key_id().to_string();
    assert_ne!(first_key, second_key);
    let vol = Volume::open(raw.clone())
        .unwrap()
        .attach(kms, principal)
        .unwrap();
    let mut back = vec![0u8; data.len()];
    vol.read_sectors(3, &mut back).unwrap();
    assert_eq!(back, data);
    drop(vol);

    // Another volume's header carrying this volume's wrapped key: the
    // volume's encryption context no longer matches, the service refuses.
    let other = Volume::create(device(), kms, principal, key_a, params(id_base + 1))
        .unwrap()
        .detach()
        .map_err(|(_, e)| e)
        .unwrap()
        .into_device();
    let other_bytes = other.bytes();
    let mine = Header::parse(&raw_bytes[..SLOT_SIZE]).unwrap();
    let mut forged = Header::parse(&other_bytes[..SLOT_SIZE]).unwrap();
    forged.blob = mine.blob;
    let mut slot = [0u8; SLOT_SIZE];
    forged.encode(&mut slot).unwrap();
    let mut dev = other.clone();
    dev.state().bytes[..SLOT_SIZE].copy_from_slice(&slot);
    dev.state().bytes[SLOT_SIZE..2 * SLOT_SIZE].copy_from_slice(&slot);
    let (_, e) = Volume::open(dev)
        .unwrap()
        .attach(kms, principal)
        .unwrap_err();
    assert_eq!(e, VolumeError::Kms(KmsError::InvalidCiphertext));
    (first_key, second_key)
}
