//! `Pkcs11Kms` against SoftHSM2: the volume lifecycle on token-held master
//! keys, proof that the master keys cannot be read out, the token's AES-GCM
//! checked against an independent implementation with a known key, and the
//! refusals.
//!
//! One SoftHSM2 configuration and token directory serve the whole test
//! binary (the module reads `SOFTHSM2_CONF` once, when it initialises, and a
//! module is initialised once per process); every test initialises its own
//! token, with its own label, in that directory.
//!
//! Without SoftHSM2 the tests are compiled `#[ignore]` (the build script
//! looks for the module), so `cargo test` reports them as ignored with the
//! reason; with `CI` or `ENVOL_REQUIRE_SERVICES=1` they run and fail.

#![cfg(feature = "pkcs11")]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::Ulong;
use envol::envelope::{Algorithm, Context, MAX_AAD, MAX_BLOB, WrappedKey};
use envol::header::{self, CipherSuite, Header, Params, SLOT_SIZE};
use envol::kms::policy::Policy;
use envol::kms::{Kms, KmsError, LocalKms, OsEntropy, SystemClock};
use envol::volume::{MemDevice, Volume, VolumeError};
use envol::xts::KeySize;
use envol_kms::pkcs11::{
    AuthPin, DEFAULT_MODULE, MODULE_ENV, Pkcs11, Pkcs11Config, Pkcs11Kms, load_module,
};

const SO_PIN: &str = "so-pin-8642";
const USER_PIN: &str = "user-pin-97531";

/// The SoftHSM2 module, initialised for this process with a private token
/// directory.
struct Hsm {
    pkcs11: Pkcs11,
    module: PathBuf,
    /// Serialises token initialisation (picking the free slot).
    init: Mutex<()>,
}

static HSM: OnceLock<Option<Hsm>> = OnceLock::new();

fn module_path() -> PathBuf {
    std::env::var_os(MODULE_ENV).map_or_else(|| PathBuf::from(DEFAULT_MODULE), PathBuf::from)
}

fn hsm() -> &'static Hsm {
    let h = HSM.get_or_init(|| {
        let module = module_path();
        if !module.exists() {
            return None;
        }
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale(base);
        let dir = base.join(format!("envol-softhsm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
                 slots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        // SAFETY: this runs once, inside the OnceLock initialiser that every
        // test calls before anything else; the other test threads are
        // blocked on the OnceLock and no C code of this process reads the
        // environment concurrently. SoftHSM2 reads the variable when the
        // module initialises, just below.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
        let pkcs11 = load_module(&module).expect("SoftHSM2 loads and initialises");
        Some(Hsm {
            pkcs11,
            module,
            init: Mutex::new(()),
        })
    });
    // Reached only when the build found the module (otherwise the tests
    // are compiled `#[ignore]`, see build/services.rs): a test that cannot
    // run here fails rather than passing unrun.
    h.as_ref()
        .expect("SoftHSM2 is needed: apt-get install softhsm2 (or set ENVOL_PKCS11_MODULE)")
}

/// Token directories of earlier runs, left behind because statics are never
/// dropped: removed once an hour old.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old
            && e.file_name()
                .to_string_lossy()
                .starts_with("envol-softhsm-")
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn slot_of(p: &Pkcs11, label: &str) -> Slot {
    p.get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| p.get_token_info(*s).unwrap().label() == label)
        .expect("token present")
}

/// A freshly initialised token labelled `label` (SO PIN, then user PIN),
/// and the configuration to reach it.
fn token(label: &str) -> Pkcs11Config {
    let hsm = hsm();
    let _g = hsm.init.lock().unwrap_or_else(|e| e.into_inner());
    let p = &hsm.pkcs11;
    let free = p
        .get_all_slots()
        .unwrap()
        .into_iter()
        .find(|s| !p.get_token_info(*s).unwrap().token_initialized())
        .expect("SoftHSM2 offers a slot with an uninitialised token");
    p.init_token(free, &AuthPin::from(SO_PIN), label).unwrap();
    // SoftHSM2 moves an initialised token to a slot id derived from its
    // serial number: look it up again by label.
    let slot = slot_of(p, label);
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::from(SO_PIN))).unwrap();
    s.init_pin(&AuthPin::from(USER_PIN)).unwrap();
    s.logout().unwrap();
    drop(s);
    Pkcs11Config::new(label, AuthPin::from(USER_PIN)).with_module(&hsm.module)
}

/// A raw cryptoki session on the token, logged in as its user (sharing the
/// login of any `Pkcs11Kms` on it).
fn raw_session(cfg: &Pkcs11Config) -> Session {
    let p = load_module(&cfg.module).unwrap();
    let s = p.open_rw_session(slot_of(&p, &cfg.token_label)).unwrap();
    match s.login(UserType::User, Some(&AuthPin::from(USER_PIN))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    s
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
    MemDevice::new(usize::try_from(header::DEFAULT_DATA_OFFSET).unwrap() + 64 * 4096)
}

fn guest_data(n: usize) -> Vec<u8> {
    (0..n * 4096)
        .map(|i| b"guest secret data! "[i % 19])
        .collect()
}

fn read_back(vol: &envol::volume::AttachedVolume<MemDevice>, first: u64, len: usize) -> Vec<u8> {
    let mut back = vec![0u8; len];
    vol.read_sectors(first, &mut back).unwrap();
    back
}

/// Writes `h` into both header slots of `dev`.
fn splice(dev: &mut MemDevice, h: &Header<'_>) {
    let mut slot = [0u8; SLOT_SIZE];
    h.encode(&mut slot).unwrap();
    dev.state().bytes[..SLOT_SIZE].copy_from_slice(&slot);
    dev.state().bytes[SLOT_SIZE..2 * SLOT_SIZE].copy_from_slice(&slot);
}

#[test]
#[cfg_attr(
    envol_no_softhsm,
    ignore = "SoftHSM2 not installed: apt-get install softhsm2"
)]
fn volume_lifecycle_on_token_keys() {
    let cfg = token("envol-lifecycle");
    let mut kms = Pkcs11Kms::open(cfg).unwrap();
    kms.create_key("key-a").unwrap();
    kms.create_key("key-b").unwrap();

    let vol = Volume::create(device(), &mut kms, "hypervisor", "key-a", params(1)).unwrap();
    let hdr = vol.header();
    let w = WrappedKey::parse(hdr.view().blob).unwrap();
    assert_eq!(
        (
            w.algorithm(),
            w.key_id(),
            w.backing_version(),
            w.secret_len()
        ),
        (Algorithm::Pkcs11Aes256Gcm, "key-a", 1, Some(64))
    );
    let data = guest_data(8);
    let mut scratch = vec![0u8; 3 * 4096];
    vol.write_sectors(10, &data, &mut scratch).unwrap();
    assert_eq!(read_back(&vol, 10, data.len()), data);

    let raw = vol.detach().map_err(|(_, e)| e).unwrap().into_device();
    assert!(
        !raw.bytes().windows(12).any(|w| w == b"guest secret"),
        "plaintext on disk"
    );
    let vol = Volume::open(raw)
        .unwrap()
        .attach(&mut kms, "hypervisor")
        .unwrap();
    assert_eq!(read_back(&vol, 10, data.len()), data);

    // Rewrap to key B through the token's decrypt-then-encrypt.
    vol.rewrap(&mut kms, "hypervisor", "key-b").unwrap();
    assert_eq!(vol.header().view().key_id(), "key-b");
    let raw = vol.detach().map_err(|(_, e)| e).unwrap().into_device();
    let vol = Volume::open(raw)
        .unwrap()
        .attach(&mut kms, "hypervisor")
        .unwrap();
    assert_eq!(read_back(&vol, 10, data.len()), data);
    let hdr = vol.header();
    let w = WrappedKey::parse(hdr.view().blob).unwrap();
    assert_eq!(
        (w.algorithm(), w.key_id()),
        (Algorithm::Pkcs11Aes256Gcm, "key-b")
    );
    let a = vol.detach().map_err(|(_, e)| e).unwrap().into_device();

    // Another volume's header carrying this volume's wrapped key: the
    // context (volume id) no longer matches and the token refuses it.
    let b = Volume::create(device(), &mut kms, "hypervisor", "key-b", params(2))
        .unwrap()
        .detach()
        .map_err(|(_, e)| e)
        .unwrap()
        .into_device();
    let (a_bytes, b_bytes) = (a.bytes(), b.bytes());
    let ha = Header::parse(&a_bytes[..SLOT_SIZE]).unwrap();
    let mut forged = Header::parse(&b_bytes[..SLOT_SIZE]).unwrap();
    forged.blob = ha.blob;
    let mut dev = b.clone();
    splice(&mut dev, &forged);
    let (_, e) = Volume::open(dev)
        .unwrap()
        .attach(&mut kms, "hypervisor")
        .unwrap_err();
    assert_eq!(e, VolumeError::Kms(KmsError::InvalidCiphertext));
    // An edited geometry with a fixed-up checksum: same refusal.
    let mut edited = ha;
    edited.params.volume_size -= 4096;
    let mut dev = a.clone();
    splice(&mut dev, &edited);
    let (_, e) = Volume::open(dev)
        .unwrap()
        .attach(&mut kms, "hypervisor")
        .unwrap_err();
    assert_eq!(e, VolumeError::Kms(KmsError::InvalidCiphertext));
    // Both untouched volumes still attach.
    assert!(
        Volume::open(a)
            .unwrap()
            .attach(&mut kms, "hypervisor")
            .is_ok()
    );
    assert!(
        Volume::open(b)
            .unwrap()
            .attach(&mut kms, "hypervisor")
            .is_ok()
    );
}

#[test]
#[cfg_attr(
    envol_no_softhsm,
    ignore = "SoftHSM2 not installed: apt-get install softhsm2"
)]
fn master_keys_never_leave_the_token() {
    let cfg = token("envol-sealed");
    // What envol can ask of a Pkcs11Kms: the six `Kms` calls (data keys and
    // blobs in, data keys and blobs out), `create_key` and `rotate_key`
    // (generate inside the token, return nothing or a version number),
    // `newest_version`, `reconnect` and `token_label`. No call takes or
    // returns master key material; `Debug` shows neither key nor PIN.
    let mut kms = Pkcs11Kms::open(cfg.clone()).unwrap();
    kms.create_key("key-a").unwrap();
    assert_eq!(kms.rotate_key("key-a").unwrap(), 2);
    for shown in [format!("{kms:?}"), format!("{cfg:?}"), format!("{cfg:#?}")] {
        assert!(!shown.contains(USER_PIN), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
    fn send<T: Send>() {}
    send::<Pkcs11Kms>();

    // Underneath, with raw cryptoki and the same login: the objects exist,
    // and the token will not give their value out.
    let s = raw_session(&cfg);
    let keys = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"key-a".to_vec()),
        ])
        .unwrap();
    assert_eq!(keys.len(), 2, "one object per backing version");
    let wrapping = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(Ulong::new(32)),
                Attribute::Token(false),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
                Attribute::Extractable(true),
                Attribute::Sensitive(false),
            ],
        )
        .unwrap();
    for key in keys {
        // CKA_VALUE: sensitive, so absent from what the token returns.
        assert!(matches!(
            s.get_attribute_info(key, &[AttributeType::Value]).unwrap()[..],
            [AttributeInfo::Sensitive]
        ));
        let value = s.get_attributes(key, &[AttributeType::Value]);
        assert!(
            value.is_err() || value.as_ref().unwrap().is_empty(),
            "value returned: {:?}",
            value.map(|v| v.len())
        );
        let attrs = s
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Local,
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Encrypt,
                    AttributeType::Decrypt,
                    AttributeType::Wrap,
                    AttributeType::Unwrap,
                    AttributeType::Modifiable,
                    AttributeType::KeyType,
                    AttributeType::ValueLen,
                ],
            )
            .unwrap();
        for expected in [
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::AlwaysSensitive(true),
            Attribute::NeverExtractable(true),
            Attribute::Local(true),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Modifiable(false),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(Ulong::new(32)),
        ] {
            assert!(attrs.contains(&expected), "{expected:?} not in {attrs:?}");
        }
        // Neither flag can be relaxed, nor a relaxed copy made.
        assert!(
            s.update_attributes(key, &[Attribute::Extractable(true)])
                .is_err()
        );
        assert!(
            s.update_attributes(key, &[Attribute::Sensitive(false)])
                .is_err()
        );
        assert!(s.copy_object(key, &[Attribute::Extractable(true)]).is_err());
        // C_WrapKey refuses to export it under another key...
        for m in [Mechanism::AesKeyWrap, Mechanism::AesKeyWrapPad] {
            let e = s.wrap_key(&m, wrapping, key).unwrap_err();
            assert!(
                matches!(e, CkError::Pkcs11(RvError::KeyUnextractable, _)),
                "{e}"
            );
        }
        // ...and it cannot serve as a wrapping key either.
        let e = s
            .wrap_key(&Mechanism::AesKeyWrap, key, wrapping)
            .unwrap_err();
        assert!(
            matches!(e, CkError::Pkcs11(RvError::KeyFunctionNotPermitted, _)),
            "{e}"
        );
    }
    // The service still works after all that.
    let ctx = Context::new(&[("volume", "vol-sealed")]).unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let (dek, n) = kms
        .generate_data_key("hypervisor", "key-a", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    let back = kms
        .decrypt_data_key("hypervisor", &blob[..n], &ctx)
        .unwrap();
    assert_eq!(back.as_bytes(), dek.as_bytes());
}

/// A known AES-256 key, imported into the token only by this test.
const KNOWN: [u8; 32] = *b"envol known AES-256 test key 32B";

#[test]
#[cfg_attr(
    envol_no_softhsm,
    ignore = "SoftHSM2 not installed: apt-get install softhsm2"
)]
fn token_gcm_matches_an_independent_implementation() {
    let cfg = token("envol-known");
    let mut kms = Pkcs11Kms::open(cfg.clone()).unwrap();
    let s = raw_session(&cfg);
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Label(b"known".to_vec()),
        Attribute::Id(1u32.to_le_bytes().to_vec()),
        Attribute::Value(KNOWN.to_vec()),
    ])
    .unwrap();
    let soft = Aes256Gcm::new(&KNOWN.into());
    let ctx = Context::new(&[("volume", "vol-known"), ("host", "h1")]).unwrap();

    // Token-wrapped data keys open with software AES-GCM under the known
    // key, the nonce from the blob and the blob's associated data.
    for size in [KeySize::Aes128, KeySize::Aes256] {
        let mut blob = [0u8; MAX_BLOB];
        let (dek, n) = kms
            .generate_data_key("hypervisor", "known", size, &ctx, &mut blob)
            .unwrap();
        let w = WrappedKey::parse(&blob[..n]).unwrap();
        assert_eq!(
            (w.algorithm(), w.key_id(), w.backing_version()),
            (Algorithm::Pkcs11Aes256Gcm, "known", 1)
        );
        let mut aad = [0u8; MAX_AAD];
        let a = w.associated_data(&ctx, &mut aad).unwrap();
        let mut body = w.ciphertext().to_vec();
        assert_ne!(body, dek.as_bytes());
        soft.decrypt_inout_detached(
            &Nonce::from(w.nonce()),
            &aad[..a],
            (&mut body[..]).into(),
            &Tag::from(w.tag()),
        )
        .expect("software AES-GCM authenticates the token's blob");
        assert_eq!(body, dek.as_bytes());
        // The same bytes under another context do not authenticate.
        let other = Context::new(&[("volume", "vol-other")]).unwrap();
        let b = w.associated_data(&other, &mut aad).unwrap();
        let mut body = w.ciphertext().to_vec();
        assert!(
            soft.decrypt_inout_detached(
                &Nonce::from(w.nonce()),
                &aad[..b],
                (&mut body[..]).into(),
                &Tag::from(w.tag()),
            )
            .is_err()
        );
    }

    // And the other way: a blob sealed in software opens in the token.
    let secret = b"a small secret, sealed in software";
    let nonce = *b"twelve bytes";
    let draft = WrappedKey::from_gcm_parts(
        Algorithm::Pkcs11Aes256Gcm,
        "known",
        1,
        nonce,
        secret,
        [0; 16],
    )
    .unwrap();
    let mut aad = [0u8; MAX_AAD];
    let a = draft.associated_data(&ctx, &mut aad).unwrap();
    let mut body = secret.to_vec();
    let tag = soft
        .encrypt_inout_detached(&Nonce::from(nonce), &aad[..a], (&mut body[..]).into())
        .unwrap();
    let w = WrappedKey::from_gcm_parts(
        Algorithm::Pkcs11Aes256Gcm,
        "known",
        1,
        nonce,
        &body,
        tag.into(),
    )
    .unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let n = w.encode(&mut blob).unwrap();
    let mut out = [0u8; 64];
    let m = kms
        .decrypt("hypervisor", &blob[..n], &ctx, &mut out)
        .unwrap();
    assert_eq!(&out[..m], secret);

    // Small secrets through the service open in software too.
    let mut blob = [0u8; MAX_BLOB];
    let n = kms
        .encrypt("hypervisor", "known", &ctx, b"db password", &mut blob)
        .unwrap();
    let w = WrappedKey::parse(&blob[..n]).unwrap();
    let a = w.associated_data(&ctx, &mut aad).unwrap();
    let mut body = w.ciphertext().to_vec();
    soft.decrypt_inout_detached(
        &Nonce::from(w.nonce()),
        &aad[..a],
        (&mut body[..]).into(),
        &Tag::from(w.tag()),
    )
    .unwrap();
    assert_eq!(body, b"db password");
}

const ALLOW_ALL: &str = r#"{"Statement":[
 {"Effect":"Allow","Principal":{"Envol":"hypervisor"},"Action":"kms:*"}]}"#;

#[test]
#[cfg_attr(
    envol_no_softhsm,
    ignore = "SoftHSM2 not installed: apt-get install softhsm2"
)]
fn refusals() {
    let cfg = token("envol-refusals");
    let mut kms = Pkcs11Kms::open(cfg).unwrap();
    kms.create_key("key-a").unwrap();
    let ctx = Context::new(&[("volume", "vol-1")]).unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let (dek, n) = kms
        .generate_data_key("hypervisor", "key-a", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    let blob = blob[..n].to_vec();
    let hv = "hypervisor";

    // Wrong or empty context.
    for bad in [
        Context::new(&[("volume", "vol-2")]).unwrap(),
        Context::new(&[("volume", "vol-1"), ("extra", "x")]).unwrap(),
        Context::empty(),
    ] {
        assert_eq!(
            kms.decrypt_data_key(hv, &blob, &bad).unwrap_err(),
            KmsError::InvalidCiphertext
        );
    }
    // Every single-byte edit is refused: by the parser, the token's tag
    // check, an unknown version (all InvalidCiphertext) or, for an edited
    // key id, an unknown key (NotFound).
    let id_at = 8..14; // id length and id
    for i in 0..blob.len() {
        let mut b = blob.clone();
        b[i] ^= 0x01;
        let e = kms.decrypt_data_key(hv, &b, &ctx).unwrap_err();
        if id_at.contains(&i) {
            assert!(
                matches!(e, KmsError::InvalidCiphertext | KmsError::NotFound),
                "byte {i}: {e:?}"
            );
        } else {
            assert_eq!(e, KmsError::InvalidCiphertext, "byte {i}");
        }
    }
    let e = kms
        .decrypt_data_key(hv, &blob[..blob.len() - 1], &ctx)
        .unwrap_err();
    assert_eq!(e, KmsError::InvalidCiphertext);
    // The untouched blob still opens.
    let back = kms.decrypt_data_key(hv, &blob, &ctx).unwrap();
    assert_eq!(back.as_bytes(), dek.as_bytes());

    // Blobs of other kinds of key service, even naming a key id and
    // version the token holds, are invalid ciphertext here (and the other
    // way round).
    let mut local = LocalKms::new(Box::new(OsEntropy), Box::new(SystemClock), None);
    local
        .set_service_policy("operator", Policy::allow_all(&["operator"]))
        .unwrap();
    local
        .create_key("operator", "key-a", Policy::parse(ALLOW_ALL).unwrap())
        .unwrap();
    let mut lblob = [0u8; MAX_BLOB];
    let (_, ln) = local
        .generate_data_key(hv, "key-a", KeySize::Aes256, &ctx, &mut lblob)
        .unwrap();
    let lw = WrappedKey::parse(&lblob[..ln]).unwrap();
    assert_eq!(
        (lw.algorithm(), lw.key_id(), lw.backing_version()),
        (Algorithm::Aes256Gcm, "key-a", 1)
    );
    let aws = WrappedKey::from_opaque(Algorithm::AwsKms, "key-a", &[7; 40]).unwrap();
    let mut ablob = [0u8; MAX_BLOB];
    let an = aws.encode(&mut ablob).unwrap();
    // A KMIP blob has this service's layout (GCM parts, a key id and
    // version the token holds); only the algorithm byte differs.
    let own = WrappedKey::parse(&blob).unwrap();
    let kmip = WrappedKey::from_gcm_parts(
        Algorithm::KmipAes256Gcm,
        own.key_id(),
        own.backing_version(),
        own.nonce(),
        own.ciphertext(),
        own.tag(),
    )
    .unwrap();
    let mut kblob = [0u8; MAX_BLOB];
    let kn = kmip.encode(&mut kblob).unwrap();
    let mut out = [0u8; 64];
    let mut sink = [0u8; MAX_BLOB];
    for foreign in [
        &lblob[..ln],
        &ablob[..an],
        &kblob[..kn],
        b"not a blob at all",
    ] {
        assert_eq!(
            kms.decrypt_data_key(hv, foreign, &ctx).unwrap_err(),
            KmsError::InvalidCiphertext
        );
        assert_eq!(
            kms.decrypt(hv, foreign, &ctx, &mut out).unwrap_err(),
            KmsError::InvalidCiphertext
        );
        assert_eq!(
            kms.re_encrypt(hv, foreign, &ctx, "key-a", &ctx, &mut sink)
                .unwrap_err(),
            KmsError::InvalidCiphertext
        );
    }
    assert_eq!(
        local.decrypt_data_key(hv, &blob, &ctx).unwrap_err(),
        KmsError::InvalidCiphertext
    );

    // Unknown key: NotFound when wrapping, when unwrapping a blob naming
    // it, and as a re-encrypt destination. Unknown version: invalid.
    let w = WrappedKey::parse(&blob).unwrap();
    let relabel = |id: &str, version: u32| {
        let x = WrappedKey::from_gcm_parts(
            w.algorithm(),
            id,
            version,
            w.nonce(),
            w.ciphertext(),
            w.tag(),
        )
        .unwrap();
        let mut b = vec![0u8; x.encoded_len()];
        x.encode(&mut b).unwrap();
        b
    };
    let mut sink = [0u8; MAX_BLOB];
    assert_eq!(
        kms.generate_data_key(hv, "key-z", KeySize::Aes256, &ctx, &mut sink)
            .unwrap_err(),
        KmsError::NotFound
    );
    assert_eq!(
        kms.encrypt(hv, "key-z", &ctx, b"x", &mut sink).unwrap_err(),
        KmsError::NotFound
    );
    assert_eq!(
        kms.decrypt_data_key(hv, &relabel("key-z", 1), &ctx)
            .unwrap_err(),
        KmsError::NotFound
    );
    assert_eq!(
        kms.re_encrypt(hv, &blob, &ctx, "key-z", &ctx, &mut sink)
            .unwrap_err(),
        KmsError::NotFound
    );
    for v in [0, 2, u32::MAX] {
        assert_eq!(
            kms.decrypt_data_key(hv, &relabel("key-a", v), &ctx)
                .unwrap_err(),
            KmsError::InvalidCiphertext,
            "version {v}"
        );
    }
    assert_eq!(kms.rotate_key("key-z").unwrap_err(), KmsError::NotFound);

    // Arguments: key ids, existing keys, secret sizes, buffers.
    for bad in ["", "has space", &"k".repeat(65)] {
        assert_eq!(kms.create_key(bad).unwrap_err(), KmsError::InvalidArgument);
        assert_eq!(
            kms.generate_data_key(hv, bad, KeySize::Aes256, &ctx, &mut sink)
                .unwrap_err(),
            KmsError::InvalidArgument
        );
    }
    assert_eq!(
        kms.create_key("key-a").unwrap_err(),
        KmsError::InvalidArgument
    );
    assert_eq!(
        kms.encrypt(hv, "key-a", &ctx, b"", &mut sink).unwrap_err(),
        KmsError::InvalidArgument
    );
    assert_eq!(
        kms.encrypt(hv, "key-a", &ctx, &[1; 4097], &mut sink)
            .unwrap_err(),
        KmsError::InvalidArgument
    );
    let mut big = vec![0u8; MAX_BLOB];
    let bn = kms
        .encrypt(hv, "key-a", &ctx, &[0x5a; 4096], &mut big)
        .unwrap();
    assert_eq!(bn, MAX_BLOB - 59, "key id 5 bytes of a 64-byte maximum");
    let mut big_out = vec![0u8; 4096];
    assert_eq!(
        kms.decrypt(hv, &big[..bn], &ctx, &mut big_out).unwrap(),
        4096
    );
    assert!(big_out.iter().all(|&b| b == 0x5a));
    // A small secret is not a data key.
    let mut small = [0u8; MAX_BLOB];
    let sn = kms
        .encrypt(hv, "key-a", &ctx, b"ten bytes!", &mut small)
        .unwrap();
    assert_eq!(
        kms.decrypt_data_key(hv, &small[..sn], &ctx).unwrap_err(),
        KmsError::InvalidCiphertext
    );
    // Too small an output: refused before anything is written.
    let mut short = [0xaau8; 64];
    assert_eq!(
        kms.generate_data_key(hv, "key-a", KeySize::Aes256, &ctx, &mut short)
            .unwrap_err(),
        KmsError::BufferTooSmall
    );
    assert_eq!(
        kms.re_encrypt(hv, &blob, &ctx, "key-a", &ctx, &mut short)
            .unwrap_err(),
        KmsError::BufferTooSmall
    );
    assert!(short.iter().all(|&b| b == 0xaa), "nothing written on error");
    let mut tiny = [0xaau8; 9];
    assert_eq!(
        kms.decrypt(hv, &small[..sn], &ctx, &mut tiny).unwrap_err(),
        KmsError::BufferTooSmall
    );
    assert!(tiny.iter().all(|&b| b == 0xaa));
}

#[test]
#[cfg_attr(
    envol_no_softhsm,
    ignore = "SoftHSM2 not installed: apt-get install softhsm2"
)]
fn wrong_pin_and_missing_tokens() {
    let cfg = token("envol-pin");
    // No other session of this process is logged in to this token, so the
    // token itself checks the PIN.
    let mut wrong = cfg.clone();
    wrong.user_pin = AuthPin::from("not-the-pin");
    assert_eq!(Pkcs11Kms::open(wrong).unwrap_err(), KmsError::AccessDenied);
    let mut kms = Pkcs11Kms::open(cfg.clone()).unwrap();
    kms.create_key("key-p").unwrap();
    assert_eq!(kms.token_label(), "envol-pin");
    kms.reconnect().unwrap();
    assert_eq!(kms.newest_version("key-p").unwrap(), 1);

    let mut other = cfg.clone();
    other.token_label = "no-such-token".into();
    assert_eq!(Pkcs11Kms::open(other).unwrap_err(), KmsError::NotFound);
    let mut other = cfg.clone();
    other.token_label = "x".repeat(33);
    assert_eq!(
        Pkcs11Kms::open(other).unwrap_err(),
        KmsError::InvalidArgument
    );
    let missing = cfg.with_module("/nonexistent/libpkcs11.so");
    assert_eq!(Pkcs11Kms::open(missing).unwrap_err(), KmsError::Unavailable);
}

#[test]
#[cfg_attr(
    envol_no_softhsm,
    ignore = "SoftHSM2 not installed: apt-get install softhsm2"
)]
fn rotation_keeps_old_blobs_and_wraps_new_ones_under_the_newest_version() {
    let cfg = token("envol-rotation");
    let mut kms = Pkcs11Kms::open(cfg).unwrap();
    kms.create_key("key-r").unwrap();
    let hv = "hypervisor";
    let ctx = Context::new(&[("volume", "vol-r")]).unwrap();
    let mut b1 = [0u8; MAX_BLOB];
    let (d1, n1) = kms
        .generate_data_key(hv, "key-r", KeySize::Aes128, &ctx, &mut b1)
        .unwrap();
    let mut s1 = [0u8; MAX_BLOB];
    let sn1 = kms
        .encrypt(hv, "key-r", &ctx, b"secret one", &mut s1)
        .unwrap();
    let vol = Volume::create(device(), &mut kms, hv, "key-r", params(9)).unwrap();
    let data = guest_data(2);
    let mut scratch = vec![0u8; 4096];
    vol.write_sectors(0, &data, &mut scratch).unwrap();
    let raw = vol.detach().map_err(|(_, e)| e).unwrap().into_device();

    assert_eq!(kms.rotate_key("key-r").unwrap(), 2);
    assert_eq!(kms.newest_version("key-r").unwrap(), 2);
    let mut b2 = [0u8; MAX_BLOB];
    let n2 = kms
        .generate_data_key_without_plaintext(hv, "key-r", KeySize::Aes256, &ctx, &mut b2)
        .unwrap();
    assert_eq!(WrappedKey::parse(&b1[..n1]).unwrap().backing_version(), 1);
    assert_eq!(WrappedKey::parse(&b2[..n2]).unwrap().backing_version(), 2);
    // Old blobs open with version 1, new ones with version 2.
    let back = kms.decrypt_data_key(hv, &b1[..n1], &ctx).unwrap();
    assert_eq!(back.as_bytes(), d1.as_bytes());
    assert_eq!(
        kms.decrypt_data_key(hv, &b2[..n2], &ctx).unwrap().size(),
        KeySize::Aes256
    );
    let mut out = [0u8; 16];
    let m = kms.decrypt(hv, &s1[..sn1], &ctx, &mut out).unwrap();
    assert_eq!(&out[..m], b"secret one");
    let vol = Volume::open(raw).unwrap().attach(&mut kms, hv).unwrap();
    assert_eq!(read_back(&vol, 0, data.len()), data);
    // Rewrapping onto the same key moves the volume to the newest version.
    vol.rewrap(&mut kms, hv, "key-r").unwrap();
    let hdr = vol.header();
    let w = WrappedKey::parse(hdr.view().blob).unwrap();
    assert_eq!((w.key_id(), w.backing_version()), ("key-r", 2));
    let raw = vol.detach().map_err(|(_, e)| e).unwrap().into_device();
    let vol = Volume::open(raw).unwrap().attach(&mut kms, hv).unwrap();
    assert_eq!(read_back(&vol, 0, data.len()), data);
    // A re-encrypt may also change the context.
    let ctx2 = Context::new(&[("volume", "vol-r2")]).unwrap();
    let mut b3 = [0u8; MAX_BLOB];
    let n3 = kms
        .re_encrypt(hv, &b1[..n1], &ctx, "key-r", &ctx2, &mut b3)
        .unwrap();
    assert_eq!(WrappedKey::parse(&b3[..n3]).unwrap().backing_version(), 2);
    assert_eq!(
        kms.decrypt_data_key(hv, &b3[..n3], &ctx2)
            .unwrap()
            .as_bytes(),
        d1.as_bytes()
    );
    assert_eq!(
        kms.decrypt_data_key(hv, &b3[..n3], &ctx).unwrap_err(),
        KmsError::InvalidCiphertext
    );
}

#[test]
#[cfg_attr(
    envol_no_softhsm,
    ignore = "SoftHSM2 not installed: apt-get install softhsm2"
)]
fn principal_allow_list() {
    let cfg = token("envol-principals");
    let mut open = Pkcs11Kms::open(cfg.clone()).unwrap();
    open.create_key("key-q").unwrap();
    let mut kms = Pkcs11Kms::open(cfg.allow_principal("hypervisor")).unwrap();
    let ctx = Context::new(&[("volume", "vol-q")]).unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let (dek, n) = kms
        .generate_data_key("hypervisor", "key-q", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    let mut sink = [0u8; MAX_BLOB];
    let mut out = [0u8; 64];
    for who in ["mallory", "", "Hypervisor"] {
        let denied = [
            kms.generate_data_key(who, "key-q", KeySize::Aes256, &ctx, &mut sink)
                .map(|_| ()),
            kms.generate_data_key_without_plaintext(who, "key-q", KeySize::Aes256, &ctx, &mut sink)
                .map(|_| ()),
            kms.decrypt_data_key(who, &blob[..n], &ctx).map(|_| ()),
            kms.re_encrypt(who, &blob[..n], &ctx, "key-q", &ctx, &mut sink)
                .map(|_| ()),
            kms.encrypt(who, "key-q", &ctx, b"x", &mut sink).map(|_| ()),
            kms.decrypt(who, &blob[..n], &ctx, &mut out).map(|_| ()),
        ];
        for (i, r) in denied.into_iter().enumerate() {
            assert_eq!(r, Err(KmsError::AccessDenied), "{who:?} call {i}");
        }
    }
    // The refused calls did not disturb the session.
    let back = kms
        .decrypt_data_key("hypervisor", &blob[..n], &ctx)
        .unwrap();
    assert_eq!(back.as_bytes(), dek.as_bytes());
    // Without a list every principal is served: the token only knows its
    // logged-in user. (This second service shares the first one's login.)
    let back = open.decrypt_data_key("mallory", &blob[..n], &ctx).unwrap();
    assert_eq!(back.as_bytes(), dek.as_bytes());
}
