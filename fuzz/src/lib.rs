//! Harness functions shared by the cargo-fuzz targets (one per
//! `fuzz_targets/*.rs`) and by `tests/regressions.rs`, which replays the
//! committed seeds and every input that ever crashed on plain `cargo test`.
//!
//! Each function panics exactly when a property is broken: a parser that
//! accepts bytes it does not re-encode identically, a backend that differs
//! from `soft` or from `xts-mode`, a volume attached with parameters that
//! were not the authenticated ones. Any other panic is a bug too.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use envol::envelope::{Context, MAX_BLOB, WrappedKey};
use envol::header::{self, CipherSuite, Header, Params, SLOT_SIZE};
use envol::kms::audit::{
    AuditEvent, AuditHead, AuditKey, decode_all, parse_lines, verify_against_head, verify_chain,
};
use envol::kms::policy::Policy;
use envol::kms::{Clock, Kms, LocalKms};
use envol::volume::{MemDevice, MemState, Volume};
use envol::xts::{Backend, Xts};

mod ffi_calls;
pub use ffi_calls::{ffi_calls, seed_inputs as ffi_calls_seeds};

/// Any bytes as one KMIP TTLV message: a typed error, or an item that
/// re-encodes to exactly the same bytes and, read as a response, a payload,
/// a failure or `Malformed`.
pub fn kmip_ttlv(data: &[u8]) {
    use envol_kms::kmip::protocol::{self, Answer, Operation, tag};
    use envol_kms::kmip::ttlv::Item;
    if let Ok(item) = Item::decode(data) {
        let again = item.encode().expect("a decoded item encodes");
        assert_eq!(again.as_slice(), data, "encode(decode(m)) != m");
        assert_eq!(Item::frame_len(data), Some(data.len()));
        // Whatever a server answers is a payload, a failure or Malformed;
        // the readers of a payload are total too.
        if let Ok(Answer::Success(p)) = protocol::parse_response(&item, Operation::Decrypt) {
            let _ = protocol::located(&p);
            let _ = protocol::state_of(&p);
            let _ = protocol::bytes_of(&p, tag::DATA);
            let _ = protocol::text_of(&p, tag::UNIQUE_IDENTIFIER);
        }
    }
}

/// Any bytes as one header copy: a typed error or a header that re-encodes
/// to the same bytes.
pub fn header_parse(data: &[u8]) {
    if let Ok(h) = Header::parse(data) {
        let mut out = [0u8; SLOT_SIZE];
        let n = h.encode(&mut out).expect("accepted header encodes");
        assert_eq!(&out[..n], &data[..n], "encode(parse(h)) != h");
    }
    let (a, b) = data.split_at(data.len() / 2);
    let _ = header::pick(a, b);
}

/// Like [`header_parse`], but with the length and checksum fixed up so
/// mutations reach the fields behind the checksum (as cryptsetup's fuzzers do).
pub fn header_parse_fixed(data: &[u8]) {
    let mut slot = [0u8; SLOT_SIZE];
    let n = data.len().min(SLOT_SIZE);
    slot[..n].copy_from_slice(&data[..n]);
    slot[..8].copy_from_slice(b"ENVOLHDR");
    let len = n.clamp(140, SLOT_SIZE);
    slot[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    use sha2::Digest;
    let sum: [u8; 32] = sha2::Sha256::digest(&slot[..len - 32]).into();
    slot[len - 32..len].copy_from_slice(&sum);
    header_parse(&slot[..len]);
}

/// Any bytes as a wrapped-key blob: an error or exact re-encoding; opening
/// an accepted blob with a fixed key and context never panics.
pub fn blob_parse(data: &[u8]) {
    if let Ok(w) = WrappedKey::parse(data) {
        let mut out = [0u8; MAX_BLOB];
        let n = w.encode(&mut out).expect("accepted blob encodes");
        assert_eq!(&out[..n], data);
        let mk = envol::envelope::MasterKey::from_bytes([9; 32]);
        let mut plain = [0u8; envol::envelope::MAX_SECRET];
        assert!(w.open(&mk, &Context::empty(), &mut plain).is_err());
    }
}

/// Any bytes as a canonical context encoding: an error or exact re-encoding;
/// and building a context from arbitrary pairs never panics.
pub fn context_encode(data: &[u8]) {
    if let Ok(c) = Context::decode(data) {
        let mut out = vec![0u8; c.encoded_len()];
        c.encode(&mut out).expect("accepted context encodes");
        assert_eq!(out, data);
    }
    let mut u = Unstructured::new(data);
    if let Ok(pairs) = Vec::<(String, String)>::arbitrary(&mut u) {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Ok(c) = Context::new(&refs) {
            let mut out = vec![0u8; c.encoded_len()];
            let n = c.encode(&mut out).expect("context encodes");
            assert_eq!(Context::decode(&out[..n]).expect("own encoding decodes"), c);
        }
    }
}

/// Any text as a policy document: an error with a location, or a policy
/// whose canonical JSON parses back to the same policy; evaluation never
/// panics.
pub fn policy_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Policy::parse(text) {
        let again = Policy::parse(&p.to_json()).expect("canonical JSON parses");
        assert_eq!(again, p);
        let ctx = Context::new(&[("volume", "vol-1")]).expect("context");
        for a in envol::kms::policy::Action::ALL {
            let _ = p.evaluate("hypervisor", a, &ctx);
        }
    }
}

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> u64 {
        1_700_000_000
    }
}

struct CountRng(u64);
impl envol::kms::Entropy for CountRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), envol::kms::KmsError> {
        for b in buf {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 56) as u8;
        }
        Ok(())
    }
}

fn local_kms() -> LocalKms {
    let mut kms = LocalKms::new(Box::new(CountRng(1)), Box::new(FixedClock), None);
    kms.set_service_policy("op", Policy::allow_all(&["op"]))
        .expect("service policy");
    kms
}

/// Any bytes as a sealed store, and any bytes as the *authenticated* body
/// of one: a typed error or a service, never a panic or a huge allocation.
pub fn sealed_store(data: &[u8]) {
    let root = [0x11u8; 32];
    let _ = LocalKms::unseal(
        &root,
        data,
        Box::new(CountRng(2)),
        Box::new(FixedClock),
        None,
    );
    // The first byte picks the format version the body is read as.
    let (version, body) = match data.split_first() {
        Some((v, rest)) => (if v & 1 == 0 { 2 } else { 1 }, rest),
        None => (2, data),
    };
    let file = LocalKms::seal_raw_body_for_fuzzing(&root, version, body);
    if let Ok(mut kms) = LocalKms::unseal(
        &root,
        &file,
        Box::new(CountRng(3)),
        Box::new(FixedClock),
        None,
    ) {
        // A store that opens seals again and opens to the same keys.
        let again = kms.seal(&root).expect("seal");
        let _ = LocalKms::unseal(
            &root,
            &again,
            Box::new(CountRng(4)),
            Box::new(FixedClock),
            None,
        )
        .expect("own store unseals");
    }
}

/// Any bytes as an audit log, binary and text: events decode or not; a
/// log that decodes re-encodes to the same bytes, every event's text line
/// parses back to it, and a text log that parses prints and parses back
/// to the same events.
pub fn audit_verify(data: &[u8]) {
    let key = AuditKey::from_bytes([0x5a; 32]);
    if let Ok(events) = decode_all(data) {
        let mut out = Vec::new();
        for e in &events {
            e.encode(&mut out);
            assert_eq!(AuditEvent::from_line(&e.to_line()).as_ref(), Some(e));
        }
        assert_eq!(out, data);
        let _ = verify_chain(&key, &events, false);
    }
    let _ = AuditEvent::decode(data);
    if let Ok(text) = core::str::from_utf8(data)
        && let Ok(events) = parse_lines(text)
    {
        let printed: String = events.iter().map(|e| e.to_line() + "\n").collect();
        assert_eq!(parse_lines(&printed).as_ref(), Ok(&events));
        if let Some(last) = events.last() {
            let head = AuditHead {
                seq: last.seq,
                hash: last.hash,
            };
            let _ = verify_against_head(&key, &events, false, &head);
        }
    }
}

/// A structured engine input.
#[derive(Debug, Arbitrary)]
pub struct XtsInput {
    key256: bool,
    key: [u8; 64],
    tweak: [u8; 16],
    first_sector: u64,
    sector_blocks: u8,
    sectors: u8,
    unit_len: u16,
    data: Vec<u8>,
}

/// Every available backend equals `soft` and the `xts-mode` crate, for
/// units (with ciphertext stealing) and sector runs; decrypt inverts encrypt.
pub fn xts_diff(data: &[u8]) {
    let Ok(inp) = XtsInput::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let key = if inp.key256 {
        &inp.key[..]
    } else {
        &inp.key[..32]
    };
    let Ok(soft) = Xts::with_backend(key, Backend::Soft) else {
        let half = key.len() / 2;
        assert_eq!(key[..half], key[half..], "only equal halves are refused");
        return;
    };
    let half = key.len() / 2;
    let reference = |buf: &mut [u8], tweak: [u8; 16], enc: bool| {
        use aes::cipher::KeyInit;
        macro_rules! run {
            ($c:ty) => {{
                let x = xts_mode::Xts128::<$c>::new(
                    <$c>::new_from_slice(&key[..half]).unwrap(),
                    <$c>::new_from_slice(&key[half..]).unwrap(),
                );
                if enc {
                    x.encrypt_sector(buf, tweak.into())
                } else {
                    x.decrypt_sector(buf, tweak.into())
                }
            }};
        }
        if half == 16 {
            run!(aes::Aes128)
        } else {
            run!(aes::Aes256)
        }
    };

    // One data unit.
    let len = 16 + usize::from(inp.unit_len) % 2048;
    let mut unit: Vec<u8> = inp.data.iter().copied().cycle().take(len).collect();
    unit.resize(len, 0);
    let mut expect = unit.clone();
    reference(&mut expect, inp.tweak, true);
    let mut s = unit.clone();
    soft.encrypt_unit(&inp.tweak, &mut s).unwrap();
    assert_eq!(s, expect, "soft vs xts-mode (unit)");

    // A run of sectors.
    let ss = 16 * (1 + usize::from(inp.sector_blocks) % 64);
    let mut n = 1 + usize::from(inp.sectors) % 8;
    let room = u64::MAX - inp.first_sector;
    if (n as u64 - 1) > room {
        n = room as usize + 1;
    }
    let mut run: Vec<u8> = inp.data.iter().copied().cycle().take(ss * n).collect();
    run.resize(ss * n, 0xa5);
    let mut run_expect = run.clone();
    for (i, chunk) in run_expect.chunks_mut(ss).enumerate() {
        reference(
            chunk,
            (u128::from(inp.first_sector) + i as u128).to_le_bytes(),
            true,
        );
    }

    for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        let x = Xts::with_backend(key, b).unwrap();
        let mut u = unit.clone();
        x.encrypt_unit(&inp.tweak, &mut u).unwrap();
        assert_eq!(u, expect, "{b} unit");
        x.decrypt_unit(&inp.tweak, &mut u).unwrap();
        assert_eq!(u, unit, "{b} unit round trip");
        let mut r = vec![0u8; run.len()];
        x.encrypt_sectors_to(inp.first_sector, ss, &run, &mut r)
            .unwrap();
        assert_eq!(r, run_expect, "{b} sectors");
        x.decrypt_sectors(inp.first_sector, ss, &mut r).unwrap();
        assert_eq!(r, run, "{b} sector round trip");
    }
}

const ATTACH_POLICY: &str =
    r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*"}]}"#;

fn params() -> Params {
    Params {
        suite: CipherSuite::AesXts256Plain64,
        sector_size: 512,
        data_offset: 8192,
        volume_size: 8 * 512,
        volume_id: [5; 16],
    }
}

/// A real volume made once, whose header bytes the fuzzer edits.
fn base_volume() -> &'static (Vec<u8>, Vec<u8>) {
    static BASE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut kms = local_kms();
        kms.create_key("op", "k", Policy::parse(ATTACH_POLICY).unwrap())
            .unwrap();
        let dev = MemDevice::new(8192 + 8 * 512);
        let vol = Volume::create(dev, &mut kms, "op", "k", params()).unwrap();
        let raw = vol
            .detach()
            .map_err(|(_, e)| e)
            .unwrap()
            .into_device()
            .into_state()
            .bytes;
        let store = kms.seal(&[3; 32]).unwrap();
        (raw, store)
    })
}

/// Arbitrary edits to both header copies of a real volume (checksums
/// optionally fixed up), then attach through the real key service: a typed
/// error, or a volume whose parameters are exactly the authentic ones.
pub fn volume_attach(data: &[u8]) {
    let (raw, store) = base_volume();
    let mut kms = LocalKms::unseal(
        &[3; 32],
        store,
        Box::new(CountRng(5)),
        Box::new(FixedClock),
        None,
    )
    .expect("base store");
    let mut bytes = raw.clone();
    let fix = data.first().is_some_and(|b| b & 1 == 1);
    let expect = data.first().is_some_and(|b| b & 2 == 2);
    // Each 3 bytes after the first: a little-endian position and a value.
    for edit in data.get(1..).unwrap_or(&[]).chunks_exact(3) {
        let pos = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % (2 * SLOT_SIZE);
        bytes[pos] = edit[2];
    }
    if fix {
        use sha2::Digest;
        for s in 0..2 {
            let slot = &mut bytes[s * SLOT_SIZE..(s + 1) * SLOT_SIZE];
            let len = u32::from_le_bytes([slot[12], slot[13], slot[14], slot[15]]) as usize;
            if (100..=SLOT_SIZE).contains(&len) {
                let sum: [u8; 32] = sha2::Sha256::digest(&slot[..len - 32]).into();
                slot[len - 32..len].copy_from_slice(&sum);
            }
        }
    }
    let dev = MemDevice::from_state(MemState {
        bytes: bytes.clone(),
        ..MemState::default()
    });
    let opened = if expect {
        Volume::open_expecting(dev, params().volume_id)
    } else {
        Volume::open(dev)
    };
    // Opening never writes; attaching writes only after a copy verified.
    let dev = match opened {
        Err((dev, _)) => dev,
        Ok(v) => match v.attach(&mut kms, "op") {
            Err((v, _)) => v.into_device(),
            Ok(a) => {
                assert_eq!(
                    *a.params(),
                    params(),
                    "attached with unauthenticated parameters"
                );
                let mut buf = vec![0u8; 512];
                a.read_sectors(0, &mut buf).expect("read");
                let d = a.detach().map_err(|(_, e)| e).expect("detach");
                // Both slots now hold the verified copy (bytes past a
                // copy's length are not part of it).
                let b = d.device().bytes();
                let (ha, hb) = (
                    Header::parse(&b[..SLOT_SIZE]),
                    Header::parse(&b[SLOT_SIZE..]),
                );
                assert!(ha.is_ok() && ha == hb, "slots differ after attach");
                assert_eq!(ha.map(|h| h.params), Ok(params()));
                return;
            }
        },
    };
    let after = dev.into_state().bytes;
    let first_diff = after.iter().zip(&bytes).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "a failed open or attach wrote");
    assert_eq!(after.len(), bytes.len());
    // Arbitrary key-service answers: a fake that returns whatever blob
    // decrypt the fuzzer made up never yields an attached volume.
    let _ = kms.decrypt_data_key("op", data, &Context::empty());
}

/// Small valid inputs per target, for the committed seed corpora
/// (`cargo test -- --ignored write_seeds` rewrites them; `ffi_calls` has
/// its own, [`ffi_calls_seeds`]).
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let (raw, store) = base_volume();
    let slot = raw[..SLOT_SIZE].to_vec();
    let h = Header::parse(&slot).expect("base header");
    let blob = h.blob.to_vec();
    let ctx = Context::new(&[("volume", "vol-1"), ("tenant", "t")]).expect("ctx");
    let mut enc = vec![0u8; ctx.encoded_len()];
    ctx.encode(&mut enc).expect("encode");
    let policy = br#"{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow","Principal":{"Envol":["hypervisor"]},"Action":["kms:GenerateDataKey*","kms:Decrypt"],"Condition":{"StringLike":{"kms:EncryptionContext:volume":"vol-*"},"StringEquals":{"kms:EncryptionContextKeys":["volume"]}}},{"Effect":"Deny","Principal":"*","Action":"kms:Disable?ey"}]}"#.to_vec();
    let mut kms = local_kms();
    kms.create_key("op", "k", Policy::parse(ATTACH_POLICY).expect("policy"))
        .expect("key");
    let mut b = [0u8; MAX_BLOB];
    let _ = kms.generate_data_key("op", "k", envol::xts::KeySize::Aes256, &ctx, &mut b);
    let _ = kms.decrypt_data_key("x", &b, &ctx);
    let mut log = Vec::new();
    for e in kms.audit_log() {
        e.encode(&mut log);
    }
    vec![
        ("header_parse", "slot", slot.clone()),
        ("header_parse", "two-slots", raw[..2 * SLOT_SIZE].to_vec()),
        (
            "header_parse_fixed",
            "slot",
            slot[..h.encoded_len()].to_vec(),
        ),
        ("blob_parse", "blob", blob),
        ("context_encode", "context", enc),
        ("policy_parse", "policy", policy),
        ("sealed_store", "store", store.clone()),
        ("audit_verify", "log", log),
        ("xts_diff", "bytes", (0u8..=255).collect()),
        ("volume_attach", "fix-sequence", vec![1, 16, 0, 9]),
        (
            "kmip_ttlv",
            "pykmip-encrypt-request",
            unhex(include_str!(
                "../../kms/tests/data/kmip/pykmip-encrypt-request.hex"
            )),
        ),
        (
            "kmip_ttlv",
            "pykmip-decrypt-request",
            unhex(include_str!(
                "../../kms/tests/data/kmip/pykmip-decrypt-request.hex"
            )),
        ),
        (
            "kmip_ttlv",
            "pykmip-encrypt-response",
            unhex(include_str!(
                "../../kms/tests/data/kmip/pykmip-encrypt-response.hex"
            )),
        ),
        (
            "kmip_ttlv",
            "pykmip-decrypt-failure-response",
            unhex(include_str!(
                "../../kms/tests/data/kmip/pykmip-decrypt-failure-response.hex"
            )),
        ),
        (
            "kmip_ttlv",
            "pykmip-get-attributes-response",
            unhex(include_str!(
                "../../kms/tests/data/kmip/pykmip-get-attributes-response.hex"
            )),
        ),
        (
            "volume_attach",
            "edit-sector-size",
            vec![1, 28, 0, 0, 29, 0, 2],
        ),
    ]
}

/// Bytes from hex text (the committed golden encodings).
fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.trim()).expect("golden hex")
}
