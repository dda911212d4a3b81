//! The reference key service end to end: least privilege, grants, key
//! states over time, rotation, context binding, audit chain, sealed store.

#![allow(clippy::cast_possible_truncation)] // test randomness

use envol::envelope::{Context, MAX_BLOB, WrappedKey};
use envol::kms::audit::{AuditEvent, AuditSink, AuditSinkError, ChainError, Outcome, decode_all};
use envol::kms::policy::{Action, Policy};
use envol::kms::{GrantConstraint, KeyState, Kms, KmsError, LocalKms, SealError};
use envol::xts::KeySize;

mod common;
use common::{DAY, FakeClock, LEAST_PRIVILEGE, SeededRng, with_key};
use std::sync::atomic::Ordering;

fn vol(id: &str) -> Context<'_> {
    Context::new(&[("volume", id)]).unwrap()
}

#[test]
fn least_privilege() {
    let (mut kms, _) = with_key(1);
    let ctx = vol("vol-1");
    let mut blob = [0u8; MAX_BLOB];
    let (dek, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    assert_eq!(dek.as_bytes().len(), 64);
    let again = kms
        .decrypt_data_key("hypervisor", &blob[..n], &ctx)
        .unwrap();
    assert_eq!(again.as_bytes(), dek.as_bytes());

    // Only with a volume context.
    let not_a_volume = Context::new(&[("volume", "scratch")]).unwrap();
    assert_eq!(
        kms.generate_data_key(
            "hypervisor",
            "disk-key",
            KeySize::Aes256,
            &not_a_volume,
            &mut blob
        )
        .unwrap_err(),
        KmsError::AccessDenied
    );
    assert_eq!(
        kms.decrypt_data_key("hypervisor", &blob[..n], &Context::empty())
            .unwrap_err(),
        KmsError::AccessDenied
    );
    // The hypervisor cannot manage the key.
    assert_eq!(
        kms.disable_key("hypervisor", "disk-key"),
        Err(KmsError::AccessDenied)
    );
    assert_eq!(
        kms.schedule_key_deletion("hypervisor", "disk-key", 7, true),
        Err(KmsError::AccessDenied)
    );
    assert_eq!(
        kms.put_key_policy("hypervisor", "disk-key", Policy::allow_all(&["hypervisor"])),
        Err(KmsError::AccessDenied)
    );
    // The admin manages but cannot see data keys.
    assert_eq!(
        kms.decrypt_data_key("admin", &blob[..n], &ctx).unwrap_err(),
        KmsError::AccessDenied
    );
    assert_eq!(
        kms.generate_data_key("admin", "disk-key", KeySize::Aes256, &ctx, &mut blob)
            .unwrap_err(),
        KmsError::AccessDenied
    );
    assert_eq!(
        kms.describe_key("admin", "disk-key").unwrap().state,
        KeyState::Enabled
    );
    kms.disable_key("admin", "disk-key").unwrap();
    kms.enable_key("admin", "disk-key").unwrap();
    // Unknown principal, unknown key.
    assert_eq!(
        kms.decrypt_data_key("mallory", &blob[..n], &ctx)
            .unwrap_err(),
        KmsError::AccessDenied
    );
    assert_eq!(
        kms.generate_data_key("hypervisor", "nope", KeySize::Aes256, &ctx, &mut blob)
            .unwrap_err(),
        KmsError::NotFound
    );
}

#[test]
fn context_binding_and_tampering() {
    let (mut kms, _) = with_key(2);
    let mut b1 = [0u8; MAX_BLOB];
    let mut b2 = [0u8; MAX_BLOB];
    let (_, n1) = kms
        .generate_data_key(
            "hypervisor",
            "disk-key",
            KeySize::Aes256,
            &vol("vol-1"),
            &mut b1,
        )
        .unwrap();
    let (_, n2) = kms
        .generate_data_key(
            "hypervisor",
            "disk-key",
            KeySize::Aes128,
            &vol("vol-2"),
            &mut b2,
        )
        .unwrap();
    // A blob moved to another volume does not unwrap there.
    assert_eq!(
        kms.decrypt_data_key("hypervisor", &b1[..n1], &vol("vol-2"))
            .unwrap_err(),
        KmsError::InvalidCiphertext
    );
    assert_eq!(
        kms.decrypt_data_key("hypervisor", &b2[..n2], &vol("vol-2"))
            .unwrap()
            .size(),
        KeySize::Aes128
    );
    // An extra context pair is a mismatch too.
    let more = Context::new(&[("volume", "vol-1"), ("host", "h1")]).unwrap();
    assert_eq!(
        kms.decrypt_data_key("hypervisor", &b1[..n1], &more)
            .unwrap_err(),
        KmsError::InvalidCiphertext
    );
    // Every single-bit flip of the blob is refused.
    for i in 0..n1 * 8 {
        let mut b = b1;
        b[i / 8] ^= 1 << (i % 8);
        let r = kms.decrypt_data_key("hypervisor", &b[..n1], &vol("vol-1"));
        assert!(r.is_err(), "bit {i} accepted");
    }
}

#[test]
fn grants_with_constraints_retire_and_revoke() {
    let (mut kms, _) = with_key(3);
    let ctx = vol("vol-7");
    let mut blob = [0u8; MAX_BLOB];
    let (_, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    let blob = &blob[..n];
    assert_eq!(
        kms.decrypt_data_key("backup", blob, &ctx).unwrap_err(),
        KmsError::AccessDenied
    );

    // Equals: exactly this context.
    let g = kms
        .create_grant(
            "admin",
            "disk-key",
            "backup",
            &[Action::Decrypt],
            Some(GrantConstraint::ContextEquals(vec![(
                "volume".into(),
                "vol-7".into(),
            )])),
            Some("admin"),
        )
        .unwrap();
    assert!(kms.decrypt_data_key("backup", blob, &ctx).is_ok());
    let mut other = [0u8; MAX_BLOB];
    let (_, m) = kms
        .generate_data_key(
            "hypervisor",
            "disk-key",
            KeySize::Aes256,
            &vol("vol-8"),
            &mut other,
        )
        .unwrap();
    assert_eq!(
        kms.decrypt_data_key("backup", &other[..m], &vol("vol-8"))
            .unwrap_err(),
        KmsError::AccessDenied
    );
    // The grant covers Decrypt only.
    let mut tmp = [0u8; MAX_BLOB];
    assert_eq!(
        kms.generate_data_key("backup", "disk-key", KeySize::Aes256, &ctx, &mut tmp)
            .unwrap_err(),
        KmsError::AccessDenied
    );
    assert_eq!(kms.list_grants("admin", "disk-key").unwrap().len(), 1);
    // Retired by the grantee: gone.
    kms.retire_grant("backup", "disk-key", &g).unwrap();
    assert_eq!(
        kms.decrypt_data_key("backup", blob, &ctx).unwrap_err(),
        KmsError::AccessDenied
    );

    // Subset: these pairs at least.
    let g2 = kms
        .create_grant(
            "admin",
            "disk-key",
            "backup",
            &[Action::Decrypt],
            Some(GrantConstraint::ContextSubset(vec![(
                "tenant".into(),
                "t1".into(),
            )])),
            None,
        )
        .unwrap();
    let tctx = Context::new(&[("volume", "vol-9"), ("tenant", "t1")]).unwrap();
    let (_, k) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &tctx, &mut tmp)
        .unwrap();
    assert!(kms.decrypt_data_key("backup", &tmp[..k], &tctx).is_ok());
    assert_eq!(
        kms.decrypt_data_key("backup", blob, &ctx).unwrap_err(),
        KmsError::AccessDenied
    );
    // A stranger cannot retire it; the hypervisor cannot revoke it; the admin can.
    assert_eq!(
        kms.retire_grant("mallory", "disk-key", &g2),
        Err(KmsError::AccessDenied)
    );
    assert_eq!(
        kms.revoke_grant("hypervisor", "disk-key", &g2),
        Err(KmsError::AccessDenied)
    );
    kms.revoke_grant("admin", "disk-key", &g2).unwrap();
    assert_eq!(
        kms.decrypt_data_key("backup", &tmp[..k], &tctx)
            .unwrap_err(),
        KmsError::AccessDenied
    );
    assert_eq!(
        kms.revoke_grant("admin", "disk-key", &g2),
        Err(KmsError::NotFound)
    );
}

#[test]
fn key_states_over_time() {
    let (mut kms, t) = with_key(4);
    let ctx = vol("vol-1");
    let mut blob = [0u8; MAX_BLOB];
    let (_, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    let blob = &blob[..n];

    kms.disable_key("admin", "disk-key").unwrap();
    assert_eq!(
        kms.decrypt_data_key("hypervisor", blob, &ctx).unwrap_err(),
        KmsError::Disabled
    );
    kms.enable_key("admin", "disk-key").unwrap();
    assert!(kms.decrypt_data_key("hypervisor", blob, &ctx).is_ok());

    // The key protects vol-1: deletion needs force; the window is 7..=30 days.
    assert_eq!(
        kms.protected_volumes("admin", "disk-key").unwrap(),
        vec![vec![("volume".to_string(), "vol-1".to_string())]]
    );
    assert_eq!(
        kms.schedule_key_deletion("admin", "disk-key", 7, false),
        Err(KmsError::KeyInUse)
    );
    assert_eq!(
        kms.schedule_key_deletion("admin", "disk-key", 6, true),
        Err(KmsError::InvalidArgument)
    );
    assert_eq!(
        kms.schedule_key_deletion("admin", "disk-key", 31, true),
        Err(KmsError::InvalidArgument)
    );
    let at = kms
        .schedule_key_deletion("admin", "disk-key", 7, true)
        .unwrap();
    assert_eq!(at, t.load(Ordering::SeqCst) + 7 * DAY);
    assert_eq!(
        kms.decrypt_data_key("hypervisor", blob, &ctx).unwrap_err(),
        KmsError::PendingDeletion
    );
    assert_eq!(
        kms.enable_key("admin", "disk-key"),
        Err(KmsError::PendingDeletion)
    );
    // Cancel: back to Disabled, as AWS does.
    kms.cancel_key_deletion("admin", "disk-key").unwrap();
    assert_eq!(
        kms.describe_key("admin", "disk-key").unwrap().state,
        KeyState::Disabled
    );
    kms.enable_key("admin", "disk-key").unwrap();
    assert!(kms.decrypt_data_key("hypervisor", blob, &ctx).is_ok());

    // Schedule again and let the clock pass the window: deleted for good.
    let at = kms
        .schedule_key_deletion("admin", "disk-key", 30, true)
        .unwrap();
    t.store(at - 1, Ordering::SeqCst);
    assert!(matches!(
        kms.describe_key("admin", "disk-key").unwrap().state,
        KeyState::PendingDeletion { .. }
    ));
    t.store(at, Ordering::SeqCst);
    assert_eq!(
        kms.decrypt_data_key("hypervisor", blob, &ctx).unwrap_err(),
        KmsError::NotFound
    );
    assert_eq!(
        kms.describe_key("admin", "disk-key"),
        Err(KmsError::NotFound)
    );
    assert_eq!(
        kms.cancel_key_deletion("admin", "disk-key"),
        Err(KmsError::NotFound)
    );
}

#[test]
fn rotation_keeps_old_blobs() {
    let (mut kms, t) = with_key(5);
    let mut blobs = Vec::new();
    for i in 0..4 {
        let id = format!("vol-{i}");
        let ctx = vol(&id);
        let mut b = [0u8; MAX_BLOB];
        let (dek, n) = kms
            .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut b)
            .unwrap();
        assert_eq!(WrappedKey::parse(&b[..n]).unwrap().backing_version(), i + 1);
        blobs.push((id, b[..n].to_vec(), dek.as_bytes().to_vec()));
        if i < 2 {
            assert_eq!(
                kms.rotate_key_on_demand("admin", "disk-key").unwrap(),
                i + 2
            );
        } else if i == 2 {
            // Automatic rotation every 90 days.
            kms.enable_key_rotation("admin", "disk-key", 90).unwrap();
            t.fetch_add(90 * DAY, Ordering::SeqCst);
        }
    }
    assert_eq!(
        kms.describe_key("admin", "disk-key")
            .unwrap()
            .backing_versions,
        4
    );
    assert_eq!(
        kms.rotate_key_on_demand("hypervisor", "disk-key"),
        Err(KmsError::AccessDenied)
    );
    for (id, b, dek) in &blobs {
        let got = kms.decrypt_data_key("hypervisor", b, &vol(id)).unwrap();
        assert_eq!(got.as_bytes(), &dek[..], "{id}");
    }
    kms.disable_key_rotation("admin", "disk-key").unwrap();
    t.fetch_add(1000 * DAY, Ordering::SeqCst);
    assert_eq!(
        kms.describe_key("admin", "disk-key")
            .unwrap()
            .backing_versions,
        4
    );
}

#[test]
fn re_encrypt_moves_a_blob_without_exposing_it() {
    let (mut kms, _) = with_key(6);
    kms.create_key("operator", "key-2", Policy::parse(LEAST_PRIVILEGE).unwrap())
        .unwrap();
    let ctx = vol("vol-1");
    let mut b = [0u8; MAX_BLOB];
    let (dek, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut b)
        .unwrap();
    let mut out = [0u8; MAX_BLOB];
    let m = kms
        .re_encrypt("hypervisor", &b[..n], &ctx, "key-2", &ctx, &mut out)
        .unwrap();
    let w = WrappedKey::parse(&out[..m]).unwrap();
    assert_eq!(w.key_id(), "key-2");
    assert_eq!(
        kms.decrypt_data_key("hypervisor", &out[..m], &ctx)
            .unwrap()
            .as_bytes(),
        dek.as_bytes()
    );
    assert_eq!(
        kms.re_encrypt("admin", &b[..n], &ctx, "key-2", &ctx, &mut out),
        Err(KmsError::AccessDenied)
    );
    assert_eq!(
        kms.re_encrypt(
            "hypervisor",
            &b[..n],
            &vol("vol-2"),
            "key-2",
            &ctx,
            &mut out
        ),
        Err(KmsError::InvalidCiphertext)
    );
    // Small secrets.
    let mut admin_policy = Policy::allow_all(&["app"]);
    kms.create_key(
        "operator",
        "secrets",
        std::mem::replace(&mut admin_policy, Policy::allow_all(&[])),
    )
    .unwrap();
    let sctx = Context::new(&[("purpose", "test")]).unwrap();
    let k = kms
        .encrypt("app", "secrets", &sctx, b"hello world", &mut out)
        .unwrap();
    let mut plain = [0u8; 64];
    let p = kms.decrypt("app", &out[..k], &sctx, &mut plain).unwrap();
    assert_eq!(&plain[..p], b"hello world");
    assert_eq!(
        kms.encrypt("app", "secrets", &sctx, &[0u8; 4097], &mut out),
        Err(KmsError::InvalidArgument)
    );
}

#[test]
fn audit_chain_catches_edits_drops_and_reorders() {
    let (mut kms, _) = with_key(7);
    let ctx = vol("vol-1");
    let mut b = [0u8; MAX_BLOB];
    let (_, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut b)
        .unwrap();
    let _ = kms.decrypt_data_key("mallory", &b[..n], &ctx);
    let _ = kms.disable_key("hypervisor", "disk-key");
    let log: Vec<AuditEvent> = kms.audit_log().iter().cloned().collect();
    assert!(log.len() >= 4);
    kms.verify_audit(&log, true, None).unwrap();
    // Denied calls are in the log with the principal and outcome.
    let denied = log
        .iter()
        .find(|e| e.principal == "mallory")
        .expect("denied call audited");
    assert_eq!(denied.outcome, Outcome::Refused(KmsError::AccessDenied));
    assert_eq!(denied.action, Action::Decrypt);
    assert_eq!(denied.key_id, "disk-key");
    assert_eq!(
        denied.context,
        vec![("volume".to_string(), "vol-1".to_string())]
    );

    let mut edited = log.clone();
    edited[1].principal = "someone-else".into();
    assert_eq!(
        kms.verify_audit(&edited, true, None),
        Err(ChainError::Hash { index: 1 })
    );
    let mut dropped = log.clone();
    dropped.remove(1);
    assert!(kms.verify_audit(&dropped, true, None).is_err());
    let mut reordered = log.clone();
    reordered.swap(1, 2);
    assert!(kms.verify_audit(&reordered, true, None).is_err());
    let mut outcome = log.clone();
    let i = outcome
        .iter()
        .position(|e| e.principal == "mallory")
        .unwrap();
    outcome[i].outcome = Outcome::Allowed;
    assert!(kms.verify_audit(&outcome, true, None).is_err());
    // Dropping the first event is caught when verifying from genesis.
    assert!(kms.verify_audit(&log[1..], true, None).is_err());
    assert!(kms.verify_audit(&log[1..], false, None).is_ok());

    // The wire form verifies the same way and is total on damage.
    let mut wire = Vec::new();
    for e in &log {
        e.encode(&mut wire);
    }
    let decoded = decode_all(&wire).unwrap();
    kms.verify_audit(&decoded, true, None).unwrap();
    assert_eq!(decoded, log);
    // Any edit is caught, including a case flip of an action name, which
    // parses to the same action (found by the audit_verify fuzzer).
    for mask in [0x40u8, 0x20, 0x01] {
        for i in 0..wire.len() {
            let mut w = wire.clone();
            w[i] ^= mask;
            let bad = decode_all(&w).and_then(|d| kms.verify_audit(&d, true, None));
            assert!(bad.is_err(), "byte {i} ^ {mask:#x}");
        }
    }
    assert!(AuditEvent::decode(&wire[..10]).is_none());
}

struct FailingSink;
impl AuditSink for FailingSink {
    fn record(&mut self, _: &AuditEvent) -> Result<(), AuditSinkError> {
        Err(AuditSinkError)
    }
}

#[test]
fn failing_audit_sink_fails_the_call() {
    let (mut kms, _) = with_key(8);
    kms.set_audit_sink(Box::new(FailingSink));
    let mut b = [0u8; MAX_BLOB];
    assert_eq!(
        kms.generate_data_key(
            "hypervisor",
            "disk-key",
            KeySize::Aes256,
            &vol("vol-1"),
            &mut b
        )
        .unwrap_err(),
        KmsError::AuditFailed
    );
    assert_eq!(
        kms.disable_key("admin", "disk-key"),
        Err(KmsError::AuditFailed)
    );
}

#[test]
fn sealed_store_round_trip_and_damage() {
    let (mut kms, t) = with_key(9);
    let ctx = vol("vol-1");
    let mut b = [0u8; MAX_BLOB];
    let (dek, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut b)
        .unwrap();
    kms.rotate_key_on_demand("admin", "disk-key").unwrap();
    let g = kms
        .create_grant(
            "admin",
            "disk-key",
            "backup",
            &[Action::Decrypt],
            None,
            Some("admin"),
        )
        .unwrap();
    let root = [0x42u8; 32];
    let sealed = kms.seal(&root).unwrap();
    let head = kms.audit_log().back().unwrap().hash;

    // Restart: yesterday's blob still unwraps, grants and versions survive,
    // and the audit chain continues where it stopped.
    let clock = Box::new(FakeClock(t.clone()));
    let mut back = LocalKms::unseal(&root, &sealed, Box::new(SeededRng(99)), clock, None).unwrap();
    assert_eq!(
        back.decrypt_data_key("hypervisor", &b[..n], &ctx)
            .unwrap()
            .as_bytes(),
        dek.as_bytes()
    );
    assert_eq!(
        back.describe_key("admin", "disk-key")
            .unwrap()
            .backing_versions,
        2
    );
    assert_eq!(back.list_grants("admin", "disk-key").unwrap()[0].id, g);
    let first = &back.audit_log()[0];
    assert_eq!(first.prev_hash, head);
    assert_eq!(
        back.protected_volumes("admin", "disk-key").unwrap().len(),
        1
    );

    let mk = || -> (Box<SeededRng>, Box<FakeClock>) {
        (Box::new(SeededRng(1)), Box::new(FakeClock(t.clone())))
    };
    let (e, c) = mk();
    assert_eq!(
        LocalKms::unseal(&[0x43; 32], &sealed, e, c, None).unwrap_err(),
        SealError::Corrupt
    );
    for i in (0..sealed.len()).step_by(7) {
        let mut s = sealed.clone();
        s[i] ^= 1;
        let (e, c) = mk();
        assert!(LocalKms::unseal(&root, &s, e, c, None).is_err(), "byte {i}");
    }
    for len in [0, 3, 23, 24, sealed.len() - 1] {
        let (e, c) = mk();
        assert!(LocalKms::unseal(&root, &sealed[..len], e, c, None).is_err());
    }
    let (e, c) = mk();
    assert_eq!(
        LocalKms::unseal(&root, b"NOPE-not-a-store-at-all!!", e, c, None).unwrap_err(),
        SealError::BadMagic
    );
}

#[test]
fn debug_never_shows_key_material() {
    let (kms, _) = with_key(10);
    let s = format!("{kms:?}");
    assert!(s.starts_with("LocalKms"), "{s}");
    assert!(s.len() < 80, "{s}");
}
