//! Seeds: inputs that decode to given op sequences. Ops are written as their
//! variant tag, some leading bytes, and zeros for the rest (zero is the
//! ordinary choice everywhere).

use arbitrary::{Arbitrary, Unstructured};

use super::ops::Op;

/// Encodes op number `variant` (declaration order) followed by `prefix`,
/// zero-padded to exactly the bytes that op then consumes.
fn encode_op(variant: u32, prefix: &[u8]) -> Vec<u8> {
    const VARIANTS: u64 = 60;
    // The derive maps a u32 `t` to variant `(t * count) >> 32`.
    let t = ((u64::from(variant) << 32).div_ceil(VARIANTS)) as u32;
    let mut probe = t.to_le_bytes().to_vec();
    probe.extend_from_slice(prefix);
    probe.extend(std::iter::repeat_n(0u8, 4096));
    let mut u = Unstructured::new(&probe);
    Op::arbitrary(&mut u).expect("probe decodes");
    let used = probe.len() - u.len();
    probe.truncate(used.max(4 + prefix.len()));
    probe
}

/// Op numbers, in declaration order (checked by `seeds_decode`).
mod v {
    pub const KMS_NEW: u32 = 0;
    pub const KMS_CREATE_KEY: u32 = 1;
    pub const VOL_CREATE: u32 = 2;
    pub const VOL_WRITE: u32 = 3;
    pub const VOL_READ: u32 = 4;
    pub const VOL_DETACH: u32 = 5;
    pub const VOL_ATTACH: u32 = 6;
    pub const VOL_OPEN: u32 = 7;
    pub const VOL_REWRAP: u32 = 10;
    pub const VOL_INFO: u32 = 12;
    pub const XTS_INIT: u32 = 19;
    pub const XTS_DATA: u32 = 20;
    pub const XTS_WIPE: u32 = 21;
    pub const XTS_INIT_FROM_BLOB: u32 = 24;
    pub const ENVELOPE_SEAL: u32 = 25;
    pub const HEADER_PARSE: u32 = 28;
    pub const HEADER_CONTEXT: u32 = 29;
    pub const HEADER_UNWRAP: u32 = 30;
    pub const KMS_SEAL: u32 = 33;
    pub const KMS_CREATE_GRANT: u32 = 38;
    pub const KMS_AUDIT: u32 = 41;
    pub const KMS_GENERATE: u32 = 42;
    pub const KMS_DECRYPT: u32 = 43;
    pub const MISC: u32 = 47;
    pub const VOL_CRYPT: u32 = 48;
    pub const LEASE_SET: u32 = 49;
    pub const LEASE_ADVANCE: u32 = 50;
    pub const VOL_MAINTAIN: u32 = 51;
    pub const VOL_OPEN_EXPECT: u32 = 52;
    pub const VOL_OVERWRITE: u32 = 53;
    pub const KMS_SERVICE_POLICY: u32 = 54;
    pub const KMS_FORGET_VOLUME: u32 = 55;
    pub const KMS_AUDIT_HEAD: u32 = 56;
    pub const KMS_AUDIT_VERIFY_LINES: u32 = 57;
    pub const KMS_AUDIT_SINK: u32 = 58;
    pub const HEADER_UNWRAP_EXPECT: u32 = 59;
}

/// Named seed inputs for `fuzz/corpus/ffi_calls/`, with the op names each
/// must decode to.
pub fn seed_inputs() -> Vec<(&'static str, Vec<u8>, Vec<&'static str>)> {
    let cat = |ops: &[Vec<u8>]| ops.concat();
    // A fake-service table: KmsArg { src: Fake }.
    let fake_kms = [0x80u8];
    // VolCreate: vol, dev (VolArg 3 bytes, DevArg 4 bytes), then kms.
    let mut create_fake = vec![0u8; 3 + 4];
    create_fake.extend_from_slice(&fake_kms);
    // VolOpen of volume 1 on disk 0 with the fake service.
    let mut open_fake = vec![1u8, 0, 0, 0, 0, 0, 0];
    open_fake.extend_from_slice(&fake_kms);
    // VolAttach of volume 1; reads and writes on volume 1.
    let vol1 = [1u8, 0, 0];
    // XtsInitFromBlob / HeaderUnwrap: ctx (3 bytes), then kms.
    let mut unwrap_fake = vec![0u8; 3];
    unwrap_fake.extend_from_slice(&fake_kms);
    // KmsCreateGrant: handle, principal, key id, grantee, then one
    // operation ("kms:Decrypt").
    let mut grant = vec![0u8; 3 + 1 + 1 + 1];
    grant.extend_from_slice(&[1, 0, 0]);
    // EnvelopeSeal: master, key id, version, context, secret, then a nonce.
    // VolCrypt: vol, decrypt, first sector (tag, n), length, layout.
    let crypt_in_place = [0u8, 0, 0, 1, 0, 0, 0, 0, 3, 4, 0x60];
    // Two sectors, output 16 bytes into the input: ENVOL_ERR_OVERLAP.
    let crypt_overlap = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xa0, 0, 0, 0x10, 0];
    // VolOpenExpect of volume 1 expecting a raw id nobody has.
    let mut open_wrong = open_fake.clone();
    open_wrong.extend_from_slice(&[0, 0, 0, 0, 0, 0x80]);
    open_wrong.extend_from_slice(&[0x42; 16]);
    let mut seal = vec![0u8; 1 + 1 + 4 + 1 + 2];
    seal.push(1);
    seal.extend_from_slice(&[9; 12]);
    vec![
        (
            "local-volume",
            cat(&[
                encode_op(v::KMS_NEW, &[]),
                encode_op(v::KMS_CREATE_KEY, &[]),
                encode_op(v::VOL_CREATE, &[]),
                encode_op(v::VOL_WRITE, &[]),
                encode_op(v::VOL_READ, &[]),
                encode_op(v::VOL_DETACH, &[]),
                encode_op(v::VOL_ATTACH, &[]),
                encode_op(v::VOL_REWRAP, &[]),
                encode_op(v::VOL_INFO, &[]),
                encode_op(v::KMS_AUDIT, &[]),
                encode_op(v::KMS_SEAL, &[]),
            ]),
            vec![
                "KmsNew",
                "KmsCreateKey",
                "VolCreate",
                "VolWrite",
                "VolRead",
                "VolDetach",
                "VolAttach",
                "VolRewrap",
                "VolInfo",
                "KmsAudit",
                "KmsSeal",
            ],
        ),
        (
            "fake-volume",
            cat(&[
                encode_op(v::VOL_CREATE, &create_fake),
                encode_op(v::VOL_WRITE, &[]),
                encode_op(v::VOL_OPEN, &open_fake),
                encode_op(v::VOL_ATTACH, &vol1),
                encode_op(v::VOL_READ, &vol1),
                encode_op(v::HEADER_PARSE, &[]),
                encode_op(v::HEADER_UNWRAP, &unwrap_fake),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::HEADER_CONTEXT, &[]),
            ]),
            vec![
                "VolCreate",
                "VolWrite",
                "VolOpen",
                "VolAttach",
                "VolRead",
                "HeaderParse",
                "HeaderUnwrap",
                "XtsData",
                "HeaderContext",
            ],
        ),
        (
            "xts",
            cat(&[
                encode_op(v::XTS_INIT, &[]),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::XTS_DATA, &[0, 0, 0, 1]),
                encode_op(v::XTS_WIPE, &[]),
                encode_op(v::XTS_WIPE, &[]),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::MISC, &[]),
            ]),
            vec![
                "XtsInit", "XtsData", "XtsData", "XtsWipe", "XtsWipe", "XtsData", "Misc",
            ],
        ),
        (
            "lease",
            cat(&[
                encode_op(v::VOL_CREATE, &create_fake),
                encode_op(v::LEASE_SET, &[0, 0, 0, 10, 0]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::VOL_CRYPT, &crypt_in_place),
                encode_op(v::VOL_CRYPT, &crypt_overlap),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::LEASE_ADVANCE, &[6, 0]),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::LEASE_ADVANCE, &[100, 0]),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::VOL_READ, &[]),
                encode_op(v::VOL_DETACH, &[]),
                encode_op(v::VOL_ATTACH, &[]),
                encode_op(v::VOL_CRYPT, &crypt_in_place),
                encode_op(v::VOL_MAINTAIN, &[]),
            ]),
            vec![
                "VolCreate",
                "LeaseSet",
                "VolCrypt",
                "VolCrypt",
                "VolCrypt",
                "VolMaintain",
                "LeaseAdvance",
                "VolMaintain",
                "VolCrypt",
                "LeaseAdvance",
                "VolMaintain",
                "VolCrypt",
                "VolRead",
                "VolDetach",
                "VolAttach",
                "VolCrypt",
                "VolMaintain",
            ],
        ),
        (
            "local-lease-audit",
            cat(&[
                encode_op(v::VOL_CREATE, &[]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::VOL_CRYPT, &crypt_in_place),
                encode_op(v::LEASE_SET, &[0, 0, 0, 10, 0]),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::KMS_AUDIT_SINK, &[0, 0, 0, 0, 1]),
                encode_op(v::KMS_AUDIT_HEAD, &[]),
                encode_op(v::KMS_AUDIT_VERIFY_LINES, &[0, 0, 0, 8, 0]),
                encode_op(v::KMS_AUDIT_VERIFY_LINES, &[0, 0, 0, 8, 1, 5, 0, 0x40]),
                encode_op(v::KMS_AUDIT_SINK, &[0, 0, 0, 1, 1]),
                encode_op(v::LEASE_ADVANCE, &[6, 0]),
                encode_op(v::VOL_MAINTAIN, &[]),
                encode_op(v::VOL_CRYPT, &[]),
                encode_op(v::KMS_AUDIT_SINK, &[0, 0, 0, 3, 1]),
                encode_op(v::KMS_SERVICE_POLICY, &[]),
                encode_op(v::KMS_FORGET_VOLUME, &[]),
                encode_op(v::VOL_OVERWRITE, &[1, 0, 0, 1]),
            ]),
            vec![
                "VolCreate",
                "VolCrypt",
                "VolCrypt",
                "LeaseSet",
                "VolMaintain",
                "KmsAuditSink",
                "KmsAuditHead",
                "KmsAuditVerifyLines",
                "KmsAuditVerifyLines",
                "KmsAuditSink",
                "LeaseAdvance",
                "VolMaintain",
                "VolCrypt",
                "KmsAuditSink",
                "KmsServicePolicy",
                "KmsForgetVolume",
                "VolOverwrite",
            ],
        ),
        (
            "expect",
            cat(&[
                encode_op(v::VOL_CREATE, &create_fake),
                encode_op(v::HEADER_UNWRAP_EXPECT, &unwrap_fake),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::VOL_OPEN_EXPECT, &open_wrong),
                encode_op(v::VOL_OPEN_EXPECT, &open_fake),
                encode_op(v::VOL_ATTACH, &vol1),
                encode_op(v::VOL_READ, &vol1),
            ]),
            vec![
                "VolCreate",
                "HeaderUnwrapExpect",
                "XtsData",
                "VolOpenExpect",
                "VolOpenExpect",
                "VolAttach",
                "VolRead",
            ],
        ),
        (
            "local-keys",
            cat(&[
                encode_op(v::KMS_NEW, &[]),
                encode_op(v::KMS_CREATE_KEY, &[]),
                encode_op(v::KMS_GENERATE, &[]),
                encode_op(v::KMS_DECRYPT, &[]),
                encode_op(v::XTS_INIT_FROM_BLOB, &[]),
                encode_op(v::XTS_DATA, &[]),
                encode_op(v::KMS_CREATE_GRANT, &grant),
                encode_op(v::ENVELOPE_SEAL, &seal),
            ]),
            vec![
                "KmsNew",
                "KmsCreateKey",
                "KmsGenerate",
                "KmsDecrypt",
                "XtsInitFromBlob",
                "XtsData",
                "KmsCreateGrant",
                "EnvelopeSeal",
            ],
        ),
    ]
}
