//! Every published XTS-AES vector (NIST CAVP, IEEE 1619 Annex B via Mbed TLS
//! and Botan, Wycheproof) on every backend this CPU has, both directions, in
//! place and out of place. See `tests/data/PROVENANCE.md`.

#![allow(clippy::cast_possible_truncation)] // test data and indices

use envol::xts::{Backend, Error, Xts};

struct Vector {
    name: String,
    key: Vec<u8>,
    tweak: [u8; 16],
    pt: Vec<u8>,
    ct: Vec<u8>,
    seq_no: Option<u64>,
}

fn load() -> Vec<Vector> {
    let text = include_str!("data/xts_aes_vectors.json");
    let json: serde_json::Value = serde_json::from_str(text).expect("vector file is JSON");
    let list = json.as_array().expect("a list");
    list.iter()
        .map(|v| {
            let field = |k: &str| hex::decode(v[k].as_str().expect(k)).expect("hex");
            Vector {
                name: v["name"].as_str().unwrap().to_string(),
                key: field("key"),
                tweak: field("tweak").try_into().expect("16-byte tweak"),
                pt: field("pt"),
                ct: field("ct"),
                seq_no: v
                    .get("data_unit_seq_number")
                    .and_then(|s| s.as_str().map(|s| s.parse().unwrap()).or(s.as_u64())),
            }
        })
        .collect()
}

fn available() -> Vec<Backend> {
    Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect()
}

#[test]
fn all_published_vectors_on_every_backend() {
    let vectors = load();
    assert_eq!(vectors.len(), 3125, "the merged file holds 3,125 vectors");
    let mut weak = 0;
    for backend in available() {
        let mut passed = 0;
        let mut cts = 0;
        let mut as_sectors = 0;
        for v in &vectors {
            let half = v.key.len() / 2;
            if v.key[..half] == v.key[half..] {
                assert_eq!(
                    Xts::with_backend(&v.key, backend).unwrap_err(),
                    Error::WeakKey,
                    "{}: equal key halves must be refused",
                    v.name
                );
                weak += 1;
                continue;
            }
            let xts = Xts::with_backend(&v.key, backend).unwrap();
            assert_eq!(xts.backend(), backend);

            let mut buf = v.pt.clone();
            xts.encrypt_unit(&v.tweak, &mut buf).unwrap();
            assert_eq!(buf, v.ct, "{} encrypt on {backend}", v.name);
            xts.decrypt_unit(&v.tweak, &mut buf).unwrap();
            assert_eq!(buf, v.pt, "{} decrypt on {backend}", v.name);

            let mut out = vec![0u8; v.pt.len()];
            xts.encrypt_unit_to(&v.tweak, &v.pt, &mut out).unwrap();
            assert_eq!(out, v.ct, "{} encrypt_to on {backend}", v.name);
            xts.decrypt_unit_to(&v.tweak, &v.ct, &mut out).unwrap();
            assert_eq!(out, v.pt, "{} decrypt_to on {backend}", v.name);
            if v.pt.len() % 16 != 0 {
                cts += 1;
            }

            // Vectors whose tweak is a sector number also run as a one-sector run.
            let seq = u128::from_le_bytes(v.tweak);
            if v.pt.len() % 16 == 0 && seq <= u128::from(u64::MAX) {
                let seq = seq as u64;
                if let Some(s) = v.seq_no {
                    assert_eq!(s, seq, "{}: seq no and tweak agree", v.name);
                }
                let mut buf = v.pt.clone();
                xts.encrypt_sectors(seq, v.pt.len(), &mut buf).unwrap();
                assert_eq!(buf, v.ct, "{} as sector {seq} on {backend}", v.name);
                xts.decrypt_sectors(seq, v.pt.len(), &mut buf).unwrap();
                assert_eq!(buf, v.pt);
                as_sectors += 1;
            }
            passed += 1;
        }
        println!(
            "{backend}: {passed} vectors passed both ways ({cts} with ciphertext stealing, \
             {as_sectors} also as sector runs)"
        );
        assert_eq!(passed + 2, vectors.len());
    }
    // IEEE 1619 vector 1 (all-zero key) appears twice (Mbed TLS and Botan).
    assert_eq!(weak, 2 * available().len());
}
