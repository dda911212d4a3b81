//! Properties of the engine: round trips, every backend byte-identical to
//! `soft`, agreement with the independent `xts-mode` crate, and the
//! argument checks.

#![allow(clippy::cast_possible_truncation)] // test data and indices

use aes::cipher::KeyInit;
use envol::xts::{Backend, Error, Xts};
use proptest::prelude::*;
use rand_core::TryRng;
use xts_mode::Xts128;

mod common;
use common::SeededRng;

fn available() -> Vec<Backend> {
    Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect()
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 32),
        proptest::collection::vec(any::<u8>(), 64)
    ]
    .prop_filter("key halves differ", |k| {
        k[..k.len() / 2] != k[k.len() / 2..]
    })
}

/// A unit length: mostly small (every CTS tail), sometimes large.
fn unit_len() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 16usize..=300, 1 => 300usize..=9000]
}

/// Reference XTS through the xts-mode crate.
fn reference(key: &[u8], tweak: [u8; 16], data: &mut [u8], encrypt: bool) {
    let half = key.len() / 2;
    macro_rules! run {
        ($c:ty) => {{
            let x = Xts128::<$c>::new(
                <$c>::new_from_slice(&key[..half]).unwrap(),
                <$c>::new_from_slice(&key[half..]).unwrap(),
            );
            if encrypt {
                x.encrypt_sector(data, tweak.into())
            } else {
                x.decrypt_sector(data, tweak.into())
            }
        }};
    }
    if half == 16 {
        run!(aes::Aes128)
    } else {
        run!(aes::Aes256)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn unit_matches_reference_on_every_backend(
        key in key_strategy(),
        tweak in any::<[u8; 16]>(),
        data in unit_len().prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
    ) {
        let mut expect = data.clone();
        reference(&key, tweak, &mut expect, true);
        for b in available() {
            let xts = Xts::with_backend(&key, b).unwrap();
            let mut buf = data.clone();
            xts.encrypt_unit(&tweak, &mut buf).unwrap();
            prop_assert!(buf == expect, "encrypt on {} len {}", b, buf.len());
            let mut back = vec![0u8; buf.len()];
            xts.decrypt_unit_to(&tweak, &buf, &mut back).unwrap();
            prop_assert!(back == data, "decrypt on {}", b);
        }
    }

    #[test]
    fn sector_runs_match_soft_and_reference(
        key in key_strategy(),
        sector_blocks in prop_oneof![1usize..=40, Just(32usize), Just(256usize)],
        count in 1usize..=20,
        start in prop_oneof![any::<u64>(), 0u64..1000, (u64::MAX - 64)..=u64::MAX],
        seed in any::<u64>(),
    ) {
        let sector_size = 16 * sector_blocks;
        let count = if (u64::MAX - start) < count as u64 - 1 { (u64::MAX - start) as usize + 1 } else { count };
        let len = sector_size * count;
        let mut data = vec![0u8; len];
        let mut s = seed | 1;
        for b in data.iter_mut() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            *b = s as u8;
        }
        // Reference: each sector as one unit with tweak = LE sector number.
        let mut expect = data.clone();
        for (i, chunk) in expect.chunks_mut(sector_size).enumerate() {
            let tweak = (u128::from(start) + i as u128).to_le_bytes();
            reference(&key, tweak, chunk, true);
        }
        for b in available() {
            let xts = Xts::with_backend(&key, b).unwrap();
            let mut out = vec![0u8; len];
            xts.encrypt_sectors_to(start, sector_size, &data, &mut out).unwrap();
            prop_assert!(out == expect, "sectors on {} ss {} count {}", b, sector_size, count);
            xts.decrypt_sectors(start, sector_size, &mut out).unwrap();
            prop_assert!(out == data, "sector round trip on {}", b);
        }
    }
}

#[test]
fn xts_mode_area_agrees_with_plain64_runs() {
    // xts-mode's encrypt_area with its default tweak is plain64 over u128.
    let key: Vec<u8> = (0u8..64).collect();
    let data: Vec<u8> = (0..4096 * 3).map(|i| (i * 7 + 3) as u8).collect();
    let mut expect = data.clone();
    let x = Xts128::<aes::Aes256>::new(
        aes::Aes256::new_from_slice(&key[..32]).unwrap(),
        aes::Aes256::new_from_slice(&key[32..]).unwrap(),
    );
    x.encrypt_area(&mut expect, 4096, 77, xts_mode::get_tweak_default);
    for b in available() {
        let mut buf = data.clone();
        Xts::with_backend(&key, b)
            .unwrap()
            .encrypt_sectors(77, 4096, &mut buf)
            .unwrap();
        assert!(buf == expect, "{b}");
    }
}

#[test]
fn argument_checks() {
    let key: Vec<u8> = (1u8..=64).collect();
    assert_eq!(Xts::new(&key[..31]).unwrap_err(), Error::KeyLength);
    assert_eq!(Xts::new(&key[..48]).unwrap_err(), Error::KeyLength);
    assert_eq!(Xts::new(&[]).unwrap_err(), Error::KeyLength);
    assert_eq!(Xts::new(&[7u8; 64]).unwrap_err(), Error::WeakKey);
    assert_eq!(Xts::new(&[7u8; 32]).unwrap_err(), Error::WeakKey);
    let xts = Xts::new(&key).unwrap();
    let t = [0u8; 16];
    let mut small = [0u8; 15];
    assert_eq!(xts.encrypt_unit(&t, &mut small).unwrap_err(), Error::Length);
    assert_eq!(xts.encrypt_unit(&t, &mut []).unwrap_err(), Error::Length);
    let mut big = vec![0u8; (1 << 24) + 1];
    assert_eq!(xts.encrypt_unit(&t, &mut big).unwrap_err(), Error::Length);
    assert!(xts.encrypt_unit(&t, &mut big[..1 << 24]).is_ok());
    let mut out = [0u8; 32];
    assert_eq!(
        xts.encrypt_unit_to(&t, &[0u8; 33], &mut out).unwrap_err(),
        Error::Length
    );

    let mut buf = vec![0u8; 4096];
    for bad in [0usize, 8, 15, 24, 4095, (1 << 24) + 16] {
        assert_eq!(
            xts.encrypt_sectors(0, bad, &mut buf).unwrap_err(),
            Error::SectorSize,
            "{bad}"
        );
    }
    assert_eq!(
        xts.encrypt_sectors(0, 512, &mut buf[..1000]).unwrap_err(),
        Error::Length
    );
    assert_eq!(
        xts.encrypt_sectors(u64::MAX, 512, &mut buf[..1024])
            .unwrap_err(),
        Error::SectorOverflow
    );
    assert_eq!(
        xts.encrypt_sectors(u64::MAX - 6, 512, &mut buf)
            .unwrap_err(),
        Error::SectorOverflow
    );
    // The last sector of a run may be 2^64 - 1 exactly.
    let before = buf.clone();
    assert!(xts.encrypt_sectors(u64::MAX - 7, 512, &mut buf).is_ok());
    assert_ne!(buf, before);
    assert!(xts.encrypt_sectors(u64::MAX, 512, &mut buf[..512]).is_ok());
    // A run of zero sectors is a no-op.
    let snapshot = buf.clone();
    assert!(xts.encrypt_sectors(5, 512, &mut buf[..0]).is_ok());
    assert_eq!(buf, snapshot);
    // A refused call leaves the buffer alone.
    assert!(
        xts.encrypt_sectors(u64::MAX, 512, &mut buf[..1024])
            .is_err()
    );
    assert_eq!(buf, snapshot);
}

#[test]
fn unavailable_backend_is_refused() {
    let key: Vec<u8> = (1u8..=64).collect();
    for b in Backend::ALL {
        match Xts::with_backend(&key, b) {
            Ok(x) => assert!(b.is_available() && x.backend() == b),
            Err(e) => assert!(!b.is_available() && e == Error::BackendUnavailable),
        }
    }
}

#[test]
fn debug_shows_no_key_bytes() {
    let key = [0xabu8; 32];
    let mut key = key.to_vec();
    key[31] = 0xcd;
    let xts = Xts::new(&key).unwrap();
    let s = format!("{xts:?}");
    assert!(s.starts_with("Xts {"), "{s}");
    assert!(
        !s.to_lowercase().contains("ab") && !s.contains("171"),
        "{s}"
    );
}

#[test]
fn every_backend_the_cpu_supports_passes_its_self_test() {
    for b in Backend::ALL {
        assert_eq!(
            b.cpu_supports(),
            b.is_available(),
            "{b} failed its power-on self-test"
        );
    }
    println!(
        "self-tested and available: {:?}",
        Backend::ALL
            .into_iter()
            .filter(|b| b.is_available())
            .collect::<Vec<_>>()
    );
}

/// The fused multi-sector kernels (`vaes256`, `vaes512`) and every other
/// backend against `soft`, deterministically: sectors of 256 B, 512 B,
/// 1 KiB and 4 KiB (fused) and 528 B (not a multiple of 256: the per-sector
/// path), every run length of 1..=40 sectors (whole and partial batches of
/// sector tweaks), both key sizes, both directions, out of place and in
/// place.
#[test]
fn fused_sector_runs_match_soft() {
    let mut rng = SeededRng(0x5eed);
    let mut fill = |buf: &mut [u8]| rng.try_fill_bytes(buf).unwrap();
    if Backend::Vaes512.cpu_supports() {
        assert!(
            Backend::Vaes512.is_available(),
            "vaes512 failed its self-test"
        );
    }
    let mut compared = Vec::new();
    for klen in [32usize, 64] {
        let mut key = vec![0u8; klen];
        fill(&mut key);
        let soft = Xts::with_backend(&key, Backend::Soft).unwrap();
        for b in available().into_iter().filter(|b| *b != Backend::Soft) {
            let xts = Xts::with_backend(&key, b).unwrap();
            for sector in [256usize, 512, 528, 1024, 4096] {
                for count in 1usize..=40 {
                    let len = sector * count;
                    let mut data = vec![0u8; len];
                    fill(&mut data);
                    let mut word = [0u8; 8];
                    fill(&mut word);
                    // Now and then a run that ends at sector 2^64 - 1.
                    let start = if count % 7 == 0 {
                        u64::MAX - (count as u64 - 1)
                    } else {
                        u64::from_le_bytes(word) >> 1
                    };
                    let what = format!("{b} XTS-AES-{} sector {sector} count {count}", klen * 4);

                    let mut want = vec![0u8; len];
                    let mut got = vec![0u8; len];
                    soft.encrypt_sectors_to(start, sector, &data, &mut want)
                        .unwrap();
                    xts.encrypt_sectors_to(start, sector, &data, &mut got)
                        .unwrap();
                    assert!(got == want, "encrypt out of place: {what}");
                    let mut inplace = data.clone();
                    xts.encrypt_sectors(start, sector, &mut inplace).unwrap();
                    assert!(inplace == want, "encrypt in place: {what}");

                    // Decrypt arbitrary bytes (not only our own ciphertext).
                    soft.decrypt_sectors_to(start, sector, &data, &mut want)
                        .unwrap();
                    xts.decrypt_sectors_to(start, sector, &data, &mut got)
                        .unwrap();
                    assert!(got == want, "decrypt out of place: {what}");
                    let mut inplace = data.clone();
                    xts.decrypt_sectors(start, sector, &mut inplace).unwrap();
                    assert!(inplace == want, "decrypt in place: {what}");
                }
            }
            compared.push(b);
        }
    }
    println!("compared against soft: {compared:?}");
}
