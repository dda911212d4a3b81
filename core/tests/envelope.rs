//! Properties of the envelope formats: canonical context encoding and the
//! wrapped-key blob round-trip, their parsers are total, and any edit to a
//! blob or its context fails to unwrap.

#![allow(clippy::cast_possible_truncation)] // test randomness

use envol::envelope::{Context, MAX_BLOB, MasterKey, WrappedKey, blob_len};
use proptest::prelude::*;

mod common;
use common::SeededRng;

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map("[a-z:/._-]{1,20}", "\\PC{0,40}", 0..8)
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn context_encoding_is_canonical(p in pairs(), seed in any::<u64>()) {
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let a = Context::new(&refs).unwrap();
        // Any order gives the same bytes.
        let mut q = p.clone();
        let mut s = seed;
        for i in (1..q.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            q.swap(i, (s >> 33) as usize % (i + 1));
        }
        let refs2: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let b = Context::new(&refs2).unwrap();
        let mut ea = vec![0u8; a.encoded_len()];
        let mut eb = vec![0u8; b.encoded_len()];
        a.encode(&mut ea).unwrap();
        b.encode(&mut eb).unwrap();
        prop_assert_eq!(&ea, &eb);
        prop_assert_eq!(Context::decode(&ea).unwrap(), a);
    }

    #[test]
    fn context_decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(c) = Context::decode(&bytes) {
            let mut out = vec![0u8; c.encoded_len()];
            c.encode(&mut out).unwrap();
            prop_assert_eq!(out, bytes);
        }
    }

    #[test]
    fn blob_parse_is_total_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(w) = WrappedKey::parse(&bytes) {
            let mut out = vec![0u8; w.encoded_len()];
            w.encode(&mut out).unwrap();
            prop_assert_eq!(out, bytes);
        }
    }

    #[test]
    fn sealed_blobs_round_trip_and_bind_context(
        p in pairs(),
        secret in proptest::collection::vec(any::<u8>(), 1..300),
        id in "[A-Za-z0-9._:/-]{1,64}",
        version in any::<u32>(),
        seed in any::<u64>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut rng = SeededRng(seed);
        let mk = MasterKey::generate(&mut rng).unwrap();
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let ctx = Context::new(&refs).unwrap();
        let mut blob = vec![0u8; MAX_BLOB];
        let n = mk.seal(&id, version, &ctx, &secret, &mut rng, &mut blob).unwrap();
        prop_assert_eq!(n, blob_len(id.len(), secret.len()));
        let blob = &blob[..n];
        let w = WrappedKey::parse(blob).unwrap();
        prop_assert_eq!(w.key_id(), id.as_str());
        prop_assert_eq!(w.backing_version(), version);
        let mut out = vec![0u8; secret.len()];
        prop_assert_eq!(w.open(&mk, &ctx, &mut out).unwrap(), secret.len());
        prop_assert_eq!(&out, &secret);
        let mut again = vec![0u8; n];
        w.encode(&mut again).unwrap();
        prop_assert_eq!(&again[..], blob);

        // A context with one more pair does not unwrap the blob.
        let mut bigger = ctx;
        if bigger.insert("~extra", "x").is_ok() {
            prop_assert!(w.open(&mk, &bigger, &mut out).is_err());
        }
        // One flipped bit anywhere is refused.
        let mut edited = blob.to_vec();
        let i = flip.index(n * 8);
        edited[i / 8] ^= 1 << (i % 8);
        let r = WrappedKey::parse(&edited).and_then(|w| w.open(&mk, &ctx, &mut out));
        prop_assert!(r.is_err());
    }
}
