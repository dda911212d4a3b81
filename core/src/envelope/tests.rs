use super::*;

struct Counter(u8);
impl rand_core::TryRng for Counter {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Counter {}

#[test]
fn context_is_order_independent_and_strict() {
    let a = Context::new(&[("volume", "v1"), ("host", "h")]).unwrap();
    let b = Context::new(&[("host", "h"), ("volume", "v1")]).unwrap();
    assert_eq!(a, b);
    let mut ea = [0u8; 64];
    let n = a.encode(&mut ea).unwrap();
    assert_eq!(Context::decode(&ea[..n]).unwrap(), a);
    assert_eq!(
        Context::new(&[("k", "1"), ("k", "2")]),
        Err(Error::BadContext)
    );
    assert_eq!(Context::new(&[("", "1")]), Err(Error::BadContext));
    // Unsorted encodings are not canonical.
    let bad = [2, 0, 1, 0, b'b', 0, 0, 1, 0, b'a', 0, 0];
    assert_eq!(Context::decode(&bad), Err(Error::BadContext));
    assert_eq!(a.get("volume"), Some("v1"));
}

#[test]
fn seal_open_and_refusals() {
    let mut rng = Counter(0);
    let mk = MasterKey::generate(&mut rng).unwrap();
    let ctx = Context::new(&[("volume", "vol-1")]).unwrap();
    let dek = DataKey::generate(KeySize::Aes256, &mut rng).unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let n = mk
        .seal("alias/disk", 3, &ctx, dek.as_bytes(), &mut rng, &mut blob)
        .unwrap();
    assert_eq!(n, blob_len(10, 64));
    let w = WrappedKey::parse(&blob[..n]).unwrap();
    assert_eq!((w.key_id(), w.backing_version()), ("alias/disk", 3));
    let mut re = [0u8; MAX_BLOB];
    assert_eq!(w.encode(&mut re).unwrap(), n);
    assert_eq!(&re[..n], &blob[..n]);
    let mut out = [0u8; 64];
    assert_eq!(w.open(&mk, &ctx, &mut out).unwrap(), 64);
    assert_eq!(&out, dek.as_bytes());

    let other = Context::new(&[("volume", "vol-2")]).unwrap();
    assert_eq!(w.open(&mk, &other, &mut out), Err(Error::Unwrap));
    assert_eq!(w.open(&mk, &Context::empty(), &mut out), Err(Error::Unwrap));
    let wrong = MasterKey::generate(&mut rng).unwrap();
    assert_eq!(w.open(&wrong, &ctx, &mut out), Err(Error::Unwrap));

    // Every single-bit flip is refused, by the parser or by the AEAD.
    for i in 0..n * 8 {
        let mut b = blob;
        b[i / 8] ^= 1 << (i % 8);
        let opened = WrappedKey::parse(&b[..n]).and_then(|w| w.open(&mk, &ctx, &mut out));
        assert!(opened.is_err(), "flip of bit {i} accepted");
    }
    // Truncation and trailing bytes.
    for len in 0..n {
        assert!(WrappedKey::parse(&blob[..len]).is_err());
    }
    assert_eq!(WrappedKey::parse(&blob[..n + 1]), Err(Error::Truncated));
}

#[test]
fn foreign_algorithms_frame_and_refuse() {
    let mut rng = Counter(7);
    let mk = MasterKey::generate(&mut rng).unwrap();
    let ctx = Context::new(&[("volume", "vol-9")]).unwrap();
    let secret = [0x42u8; 64];
    // A GCM blob assembled from parts, the AEAD computed outside this
    // module over `associated_data`, opens exactly like `seal`'s.
    let nonce = [3u8; 12];
    let mut body = secret;
    let draft =
        WrappedKey::from_gcm_parts(Algorithm::Aes256Gcm, "k1", 2, nonce, &body, [0; 16]).unwrap();
    let mut aad = [0u8; MAX_AAD];
    let a = draft.associated_data(&ctx, &mut aad).unwrap();
    let tag = Aes256Gcm::new(&(*mk.expose_for_sealing()).into())
        .encrypt_inout_detached(&Nonce::from(nonce), &aad[..a], (&mut body[..]).into())
        .unwrap();
    let w = WrappedKey::from_gcm_parts(Algorithm::Aes256Gcm, "k1", 2, nonce, &body, tag.into())
        .unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let n = w.encode(&mut blob).unwrap();
    let mut sealed = [0u8; MAX_BLOB];
    let m = mk
        .seal_with_nonce("k1", 2, &ctx, &secret, &nonce, &mut sealed)
        .unwrap();
    assert_eq!(&blob[..n], &sealed[..m]);
    // The same parts under the PKCS#11 code differ in the algorithm byte
    // (which is authenticated) and never open with software material.
    let p11 = WrappedKey::from_gcm_parts(
        Algorithm::Pkcs11Aes256Gcm,
        "k1",
        2,
        nonce,
        &body,
        tag.into(),
    )
    .unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        p11.open(&mk, &ctx, &mut out),
        Err(Error::UnsupportedAlgorithm(2))
    );
    let mut p11_blob = [0u8; MAX_BLOB];
    let pn = p11.encode(&mut p11_blob).unwrap();
    assert_eq!(pn, n);
    assert_eq!(p11_blob[5], 2);
    assert_eq!(WrappedKey::parse(&p11_blob[..pn]).unwrap(), p11);
    // Opaque: key id and the service's bytes, nothing else.
    let aws = WrappedKey::from_opaque(Algorithm::AwsKms, "alias/x", b"\x01\x02\x03").unwrap();
    let mut ob = [0u8; 64];
    let on = aws.encode(&mut ob).unwrap();
    assert_eq!(on, opaque_blob_len(7, 3));
    assert_eq!(
        &ob[..on],
        b"EVWK\x01\x03\x00\x00\x07alias/x\x03\x00\x01\x02\x03"
    );
    let back = WrappedKey::parse(&ob[..on]).unwrap();
    assert_eq!(
        (back.algorithm(), back.key_id(), back.ciphertext()),
        (Algorithm::AwsKms, "alias/x", &b"\x01\x02\x03"[..])
    );
    assert_eq!(back.secret_len(), None);
    assert_eq!(
        back.open(&mk, &ctx, &mut out),
        Err(Error::UnsupportedAlgorithm(3))
    );
    assert_eq!(
        back.associated_data(&ctx, &mut aad),
        Err(Error::UnsupportedAlgorithm(3))
    );
    for len in 0..on {
        assert!(WrappedKey::parse(&ob[..len]).is_err());
    }
    // Constructors keep the framing rules.
    assert!(WrappedKey::from_opaque(Algorithm::Aes256Gcm, "k", b"x").is_err());
    assert!(WrappedKey::from_opaque(Algorithm::AwsKms, "k", b"").is_err());
    assert!(WrappedKey::from_opaque(Algorithm::AwsKms, "bad id", b"x").is_err());
    assert!(WrappedKey::from_gcm_parts(Algorithm::AwsKms, "k", 0, nonce, b"x", [0; 16]).is_err());
    let mut unknown = ob;
    unknown[5] = 5;
    assert_eq!(
        WrappedKey::parse(&unknown[..on]),
        Err(Error::UnsupportedAlgorithm(5))
    );
}

#[test]
fn debug_hides_secrets() {
    let k = DataKey::from_bytes(&[0x5a; 64]).unwrap();
    let s = std::format!("{k:?}");
    assert!(!s.contains("90") && !s.contains("5a"), "{s}");
    let m = MasterKey::from_bytes([0x5a; 32]);
    assert_eq!(std::format!("{m:?}"), "MasterKey(..)");
}
