//! Regressions for the key-service defects found in the security review
//! (issue #13): each test failed on the code before the fix.

#![allow(clippy::cast_possible_truncation)] // test data

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use envol::envelope::{Context, MAX_BLOB};
use envol::kms::audit::{
    AuditEvent, AuditHead, AuditKey, AuditSink, AuditSinkError, ChainError, Outcome,
    SERVICE_PRINCIPAL, parse_lines,
};
use envol::kms::policy::{Action, MAX_POLICY_BYTES, Policy};
use envol::kms::{GrantConstraint, KeyState, Kms, KmsError, LocalKms, SealError};
use envol::xts::KeySize;

mod common;
use common::{DAY, FakeClock, LEAST_PRIVILEGE, SeededRng, service, with_key};

fn vol(id: &str) -> Context<'_> {
    Context::new(&[("volume", id)]).unwrap()
}

fn reopen(kms: &mut LocalKms, seed: u64) -> Result<LocalKms, SealError> {
    let root = [0x5au8; 32];
    let sealed = kms.seal(&root).expect("seal");
    let t = Arc::new(std::sync::atomic::AtomicU64::new(1_700_000_000));
    LocalKms::unseal(
        &root,
        &sealed,
        Box::new(SeededRng(seed)),
        Box::new(FakeClock(t)),
        None,
    )
}

/// A policy document of at most 32 KiB whose canonical form is longer:
/// 64 statements, each with as many single-string condition values as fit
/// (every one becomes a one-element array, two bytes longer).
fn policy_that_grows() -> String {
    let doc = |n: usize| {
        let admin = r#"{"Effect":"Allow","Principal":{"Envol":"admin"},"Action":"kms:*"}"#;
        let statements: Vec<String> = core::iter::once(admin.to_string())
            .chain((0..63).map(|s| {
                let conds: Vec<String> = (0..n)
                    .map(|c| format!(r#""kms:EncryptionContext:k{c}":"v""#))
                    .collect();
                format!(
                    r#"{{"Effect":"Allow","Principal":{{"Envol":"p{s}"}},"Action":"kms:Decrypt","Condition":{{"StringEquals":{{{}}}}}}}"#,
                    conds.join(",")
                )
            }))
            .collect();
        format!(r#"{{"Statement":[{}]}}"#, statements.join(","))
    };
    let n = (1..64)
        .take_while(|&n| doc(n).len() <= MAX_POLICY_BYTES)
        .last()
        .unwrap();
    doc(n)
}

/// #1: a policy the service accepts can always be sealed and read back,
/// though its canonical form outgrows the 32 KiB input limit.
#[test]
fn accepted_policy_whose_canonical_form_outgrows_32k_still_unseals() {
    let doc = policy_that_grows();
    assert!(doc.len() <= MAX_POLICY_BYTES, "{}", doc.len());
    let policy = Policy::parse(&doc).unwrap();
    assert!(policy.to_json().len() > MAX_POLICY_BYTES);
    let (mut kms, _) = with_key(1);
    kms.create_key("operator", "big", policy.clone()).unwrap();
    kms.put_key_policy("admin", "disk-key", policy.clone())
        .unwrap();
    let mut back = reopen(&mut kms, 2).expect("a store the service made reopens");
    assert_eq!(back.get_key_policy("admin", "big").unwrap(), policy);
    assert_eq!(back.get_key_policy("admin", "disk-key").unwrap(), policy);
}

/// #1, in general: whatever the service accepts, it can seal. Growth past
/// what unseal reads is refused up front (LimitExceeded) and the store
/// still reopens; the service's running size matches a recount.
#[test]
fn store_refuses_growth_that_would_not_unseal() {
    let (mut kms, _) = with_key(3);
    let long = "x".repeat(256);
    let mut blob = [0u8; MAX_BLOB];
    let mut made = 0u32;
    let err = loop {
        // 16 pairs of long values: about 6 KiB of protected context each.
        let keys: Vec<String> = (0..15).map(|i| format!("k{i:0>120}")).collect();
        let id = format!("vol-{made}");
        let mut pairs: Vec<(&str, &str)> =
            keys.iter().map(|k| (k.as_str(), long.as_str())).collect();
        pairs.push(("volume", &id));
        let ctx = Context::new(&pairs).unwrap();
        match kms.generate_data_key_without_plaintext(
            "hypervisor",
            "disk-key",
            KeySize::Aes256,
            &ctx,
            &mut blob,
        ) {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
        assert!(made < 20_000, "no limit reached");
    };
    assert_eq!(err, KmsError::LimitExceeded);
    let (running, recount) = kms.store_body_len();
    assert_eq!(running, recount);
    let back = reopen(&mut kms, 4).expect("a full store still reopens");
    assert_eq!(back.store_body_len().0, recount);
}

fn grant_policy() -> Policy {
    Policy::parse(
        r#"{"Statement":[
        {"Effect":"Allow","Principal":{"Envol":"admin"},"Action":"kms:*"},
        {"Effect":"Allow","Principal":{"Envol":"granter"},"Action":"kms:CreateGrant"}]}"#,
    )
    .unwrap()
}

/// #2: a principal allowed only `kms:CreateGrant` cannot grant itself
/// management rights, and a grant made through a grant only narrows it.
#[test]
fn create_grant_cannot_escalate() {
    let (mut kms, _) = service(5);
    kms.create_key("operator", "k", grant_policy()).unwrap();
    for op in [
        Action::PutKeyPolicy,
        Action::ScheduleKeyDeletion,
        Action::DisableKey,
        Action::RevokeGrant,
        Action::ForgetVolume,
        Action::CreateKey,
    ] {
        assert_eq!(
            kms.create_grant("granter", "k", "granter", &[op], None, None),
            Err(KmsError::InvalidArgument),
            "{op:?}"
        );
    }
    // Nothing it could grant itself lets it lock the admin out.
    assert_eq!(
        kms.put_key_policy("granter", "k", Policy::allow_all(&["granter"])),
        Err(KmsError::AccessDenied)
    );
    assert_eq!(
        kms.schedule_key_deletion("granter", "k", 7, true),
        Err(KmsError::AccessDenied)
    );

    // A grant that may create grants, for one volume's decrypts.
    let parent = GrantConstraint::ContextSubset(vec![("volume".into(), "vol-1".into())]);
    kms.create_grant(
        "granter",
        "k",
        "delegate",
        &[Action::CreateGrant, Action::Decrypt],
        Some(parent),
        None,
    )
    .unwrap();
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let narrower = [
        Some(GrantConstraint::ContextSubset(pairs(&[(
            "volume", "vol-1",
        )]))),
        Some(GrantConstraint::ContextSubset(pairs(&[
            ("volume", "vol-1"),
            ("tenant", "t"),
        ]))),
        Some(GrantConstraint::ContextEquals(pairs(&[(
            "volume", "vol-1",
        )]))),
    ];
    for c in narrower {
        kms.create_grant("delegate", "k", "x", &[Action::Decrypt], c, None)
            .unwrap();
    }
    let broader = [
        (vec![Action::Decrypt], None),
        (
            vec![Action::Decrypt],
            Some(GrantConstraint::ContextSubset(pairs(&[(
                "volume", "vol-2",
            )]))),
        ),
        (
            vec![Action::Encrypt],
            Some(GrantConstraint::ContextSubset(pairs(&[(
                "volume", "vol-1",
            )]))),
        ),
        (
            vec![Action::Decrypt, Action::GenerateDataKey],
            Some(GrantConstraint::ContextSubset(pairs(&[(
                "volume", "vol-1",
            )]))),
        ),
    ];
    for (ops, c) in broader {
        assert_eq!(
            kms.create_grant("delegate", "k", "x", &ops, c.clone(), None),
            Err(KmsError::AccessDenied),
            "{ops:?} {c:?}"
        );
    }
}

/// A sink that fails while `fail` is set and keeps what it took.
#[derive(Clone, Default)]
struct Switch {
    fail: Arc<Mutex<bool>>,
    got: Arc<Mutex<Vec<AuditEvent>>>,
}

impl AuditSink for Switch {
    fn record(&mut self, e: &AuditEvent) -> Result<(), AuditSinkError> {
        if *self.fail.lock().unwrap() {
            return Err(AuditSinkError);
        }
        self.got.lock().unwrap().push(e.clone());
        Ok(())
    }
}

/// #3: with a failing sink a management call changes nothing, and the sink
/// and the in-memory chain stay in step.
#[test]
fn failing_sink_leaves_every_change_undone() {
    let (mut kms, _) = with_key(6);
    let sink = Switch::default();
    kms.set_audit_sink(Box::new(sink.clone()));
    let ctx = vol("vol-1");
    let mut blob = [0u8; MAX_BLOB];
    let (_, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    let grant = kms
        .create_grant(
            "admin",
            "disk-key",
            "backup",
            &[Action::Decrypt],
            None,
            None,
        )
        .unwrap();
    let before = (
        kms.describe_key("admin", "disk-key").unwrap(),
        kms.get_key_policy("admin", "disk-key").unwrap(),
        kms.list_grants("admin", "disk-key").unwrap(),
        kms.protected_volumes("admin", "disk-key").unwrap(),
        kms.list_keys("operator").unwrap(),
        kms.audit_next_seq(),
    );

    *sink.fail.lock().unwrap() = true;
    let failed = KmsError::AuditFailed;
    let other = Policy::allow_all(&["admin"]);
    assert_eq!(kms.put_key_policy("admin", "disk-key", other), Err(failed));
    assert_eq!(
        kms.create_grant("admin", "disk-key", "x", &[Action::Decrypt], None, None),
        Err(failed)
    );
    assert_eq!(kms.disable_key("admin", "disk-key"), Err(failed));
    assert_eq!(
        kms.schedule_key_deletion("admin", "disk-key", 7, true),
        Err(failed)
    );
    assert_eq!(kms.rotate_key_on_demand("admin", "disk-key"), Err(failed));
    assert_eq!(
        kms.enable_key_rotation("admin", "disk-key", 30),
        Err(failed)
    );
    assert_eq!(kms.revoke_grant("admin", "disk-key", &grant), Err(failed));
    assert_eq!(kms.forget_volume("admin", "disk-key", &ctx), Err(failed));
    assert_eq!(
        kms.create_key("operator", "new", Policy::allow_all(&["x"])),
        Err(failed)
    );
    let other_vol = vol("vol-2");
    assert_eq!(
        kms.generate_data_key(
            "hypervisor",
            "disk-key",
            KeySize::Aes256,
            &other_vol,
            &mut blob
        )
        .map(|_| ()),
        Err(failed)
    );
    assert_eq!(kms.retire_context("admin", &blob[..n], &ctx), Err(failed));

    *sink.fail.lock().unwrap() = false;
    let after = (
        kms.describe_key("admin", "disk-key").unwrap(),
        kms.get_key_policy("admin", "disk-key").unwrap(),
        kms.list_grants("admin", "disk-key").unwrap(),
        kms.protected_volumes("admin", "disk-key").unwrap(),
        kms.list_keys("operator").unwrap(),
        kms.audit_next_seq(),
    );
    assert_eq!(before.0, after.0);
    assert_eq!(before.1, after.1);
    assert_eq!(before.2, after.2);
    assert_eq!(before.3, after.3);
    assert_eq!(before.4, after.4);
    // No refused event entered the chain: the five reads after are the
    // only new events.
    assert_eq!(after.5, before.5 + 5);
    assert!(!kms.is_retired(&ctx));
    // The sink holds a gapless chain that verifies.
    let got = sink.got.lock().unwrap().clone();
    kms.verify_audit(&got, false, None).unwrap();
}

/// #6: forgetting a protected volume is a right of its own, not a read.
#[test]
fn forget_volume_needs_its_own_right() {
    let (mut kms, _) = service(7);
    let policy = Policy::parse(
        r#"{"Statement":[
        {"Effect":"Allow","Principal":{"Envol":"hypervisor"},"Action":["kms:GenerateDataKey*","kms:Decrypt"]},
        {"Effect":"Allow","Principal":{"Envol":"auditor"},"Action":"kms:ListProtectedVolumes"},
        {"Effect":"Allow","Principal":{"Envol":"admin"},"Action":"kms:*"}]}"#,
    )
    .unwrap();
    kms.create_key("operator", "k", policy).unwrap();
    let ctx = vol("vol-1");
    let mut blob = [0u8; MAX_BLOB];
    kms.generate_data_key("hypervisor", "k", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    assert_eq!(kms.protected_volumes("auditor", "k").unwrap().len(), 1);
    assert_eq!(
        kms.forget_volume("auditor", "k", &ctx),
        Err(KmsError::AccessDenied)
    );
    assert_eq!(
        kms.schedule_key_deletion("admin", "k", 7, false),
        Err(KmsError::KeyInUse)
    );
    kms.forget_volume("admin", "k", &ctx).unwrap();
    kms.schedule_key_deletion("admin", "k", 7, false).unwrap();
    let forget = kms
        .audit_log()
        .iter()
        .find(|e| e.principal == "admin" && e.outcome == Outcome::Allowed)
        .unwrap();
    assert_eq!(forget.action, Action::ForgetVolume);
}

/// #9: the chain is keyed (a log re-hashed without the service's key does
/// not verify) and checked against an exported head (a cut tail fails).
#[test]
fn audit_chain_is_keyed_and_checked_against_an_exported_head() {
    let (mut kms, _) = with_key(8);
    let ctx = vol("vol-1");
    let mut blob = [0u8; MAX_BLOB];
    let (_, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    for _ in 0..3 {
        kms.decrypt_data_key("hypervisor", &blob[..n], &ctx)
            .unwrap();
    }
    let head: AuditHead = kms.audit_head().unwrap().to_string().parse().unwrap();
    let log: Vec<AuditEvent> = kms.audit_log().iter().cloned().collect();
    kms.verify_audit(&log, true, Some(&head)).unwrap();

    // Cut tail: the rest still chains, but not to the head.
    let cut = &log[..log.len() - 2];
    kms.verify_audit(cut, true, None).unwrap();
    assert_eq!(
        kms.verify_audit(cut, true, Some(&head)),
        Err(ChainError::HeadMissing { seq: head.seq })
    );

    // Re-hashed: an attacker edits an event and recomputes every hash with
    // a key of their own; links and sequence are perfect, the MACs are not.
    let forged_key = AuditKey::from_bytes([0x11; 32]);
    let mut forged = Vec::new();
    let mut prev = [0u8; 32];
    for e in &log {
        let principal = if e.principal == "hypervisor" {
            "nobody"
        } else {
            &e.principal
        };
        let f = AuditEvent::new(
            &forged_key,
            e.seq,
            e.time,
            principal,
            e.action,
            &e.key_id,
            e.context.clone(),
            e.outcome,
            prev,
        );
        prev = f.hash;
        forged.push(f);
    }
    assert_eq!(
        kms.verify_audit(&forged, true, None),
        Err(ChainError::Hash { index: 0 })
    );
    // The text lines verify the same way, offline from the live log.
    let text: String = log.iter().map(|e| e.to_line() + "\n").collect();
    let parsed = parse_lines(&text).unwrap();
    assert_eq!(parsed, log);
    kms.verify_audit(&parsed, true, Some(&head)).unwrap();
    // Later events extend the chain past the head and still verify against it.
    kms.decrypt_data_key("hypervisor", &blob[..n], &ctx)
        .unwrap();
    let longer: Vec<AuditEvent> = kms.audit_log().iter().cloned().collect();
    kms.verify_audit(&longer, true, Some(&head)).unwrap();
    // The key survives sealing: the reopened service verifies the old log.
    let back = reopen(&mut kms, 9).unwrap();
    back.verify_audit(&longer, true, Some(&head)).unwrap();
}

/// #10: the clock's changes (destruction at the end of the deletion
/// window, automatic rotation) are audited before they happen.
#[test]
fn clock_driven_destruction_and_rotation_are_audited() {
    let (mut kms, t) = with_key(10);
    kms.create_key(
        "operator",
        "rotating",
        Policy::parse(LEAST_PRIVILEGE).unwrap(),
    )
    .unwrap();
    kms.enable_key_rotation("admin", "rotating", 30).unwrap();
    let at = kms
        .schedule_key_deletion("admin", "disk-key", 7, true)
        .unwrap();
    t.store(at, Ordering::SeqCst);
    kms.tick();
    let service: Vec<&AuditEvent> = kms
        .audit_log()
        .iter()
        .filter(|e| e.principal == SERVICE_PRINCIPAL)
        .collect();
    assert_eq!(service.len(), 1);
    assert_eq!(service[0].action, Action::DeleteKey);
    assert_eq!(service[0].key_id, "disk-key");
    assert_eq!(
        kms.describe_key("admin", "disk-key"),
        Err(KmsError::NotFound)
    );
    t.fetch_add(30 * DAY, Ordering::SeqCst);
    kms.tick();
    let rotated = kms
        .audit_log()
        .iter()
        .filter(|e| e.principal == SERVICE_PRINCIPAL && e.action == Action::RotateKey)
        .count();
    assert_eq!(rotated, 1);
    assert_eq!(
        kms.describe_key("admin", "rotating")
            .unwrap()
            .backing_versions,
        2
    );
    let log: Vec<AuditEvent> = kms.audit_log().iter().cloned().collect();
    kms.verify_audit(&log, true, None).unwrap();

    // While the sink fails, the service's own changes wait.
    let sink = Switch::default();
    *sink.fail.lock().unwrap() = true;
    kms.set_audit_sink(Box::new(sink.clone()));
    t.fetch_add(30 * DAY, Ordering::SeqCst);
    kms.tick();
    *sink.fail.lock().unwrap() = false;
    assert_eq!(
        kms.describe_key("admin", "rotating")
            .unwrap()
            .backing_versions,
        3
    );
    assert_eq!(sink.got.lock().unwrap()[0].action, Action::RotateKey);
}

/// #13: creating keys needs `kms:CreateKey` under the service policy, and
/// is audited as that action; listing keys as `kms:ListKeys`.
#[test]
fn creating_and_listing_keys_need_the_service_policy() {
    let (mut kms, _) = service(11);
    let p = || Policy::allow_all(&["x"]);
    for who in ["mallory", "", "(service)", "admin"] {
        let want = if who.is_empty() || who.starts_with('(') {
            KmsError::InvalidArgument
        } else {
            KmsError::AccessDenied
        };
        assert_eq!(kms.create_key(who, "k", p()), Err(want), "{who:?}");
        assert_eq!(kms.list_keys(who), Err(want), "{who:?}");
    }
    kms.create_key("operator", "k", p()).unwrap();
    assert_eq!(kms.list_keys("operator").unwrap(), vec!["k".to_string()]);
    let created = kms
        .audit_log()
        .iter()
        .find(|e| e.outcome == Outcome::Allowed && e.key_id == "k")
        .unwrap();
    assert_eq!(created.action, Action::CreateKey);
    assert_eq!(created.principal, "operator");
    let refused = kms
        .audit_log()
        .iter()
        .find(|e| e.principal == "mallory" && e.action == Action::CreateKey)
        .unwrap();
    assert_eq!(refused.outcome, Outcome::Refused(KmsError::AccessDenied));

    // A fresh service lets nobody create keys until the operator says so;
    // after that, changing the service policy needs kms:PutServicePolicy.
    let t = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut fresh = LocalKms::new(Box::new(SeededRng(1)), Box::new(FakeClock(t)), None);
    assert_eq!(
        fresh.create_key("operator", "k", p()),
        Err(KmsError::AccessDenied)
    );
    let only_create = Policy::parse(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"Envol":"operator"},"Action":"kms:CreateKey"}]}"#,
    )
    .unwrap();
    fresh.set_service_policy("operator", only_create).unwrap();
    fresh.create_key("operator", "k", p()).unwrap();
    assert_eq!(
        fresh.set_service_policy("operator", Policy::allow_all(&["*"])),
        Err(KmsError::AccessDenied)
    );
    // The service policy survives sealing.
    let mut back = reopen(&mut fresh, 2).unwrap();
    assert_eq!(
        back.create_key("mallory", "m", p()),
        Err(KmsError::AccessDenied)
    );
    back.create_key("operator", "k2", p()).unwrap();
}

/// Retire: a tombstone makes the retired volume's context undecryptable,
/// whatever copy of its header turns up later; it survives sealing.
#[test]
fn retired_context_is_never_unwrapped_again() {
    let (mut kms, _) = with_key(12);
    let ctx = vol("vol-1");
    let mut blob = [0u8; MAX_BLOB];
    let (_, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    let blob = &blob[..n];
    // Retiring needs kms:RetireVolume, and only a context the blob is for.
    assert_eq!(
        kms.retire_context("hypervisor", blob, &ctx),
        Err(KmsError::AccessDenied)
    );
    assert_eq!(
        kms.retire_context("admin", blob, &vol("vol-2")),
        Err(KmsError::InvalidCiphertext)
    );
    assert_eq!(kms.retire_context("admin", blob, &ctx), Ok(true));
    assert!(kms.is_retired(&ctx));
    assert_eq!(
        kms.decrypt_data_key("hypervisor", blob, &ctx).map(|_| ()),
        Err(KmsError::VolumeRetired)
    );
    let mut out = [0u8; MAX_BLOB];
    assert_eq!(
        kms.re_encrypt(
            "hypervisor",
            blob,
            &ctx,
            "disk-key",
            &vol("vol-9"),
            &mut out
        ),
        Err(KmsError::VolumeRetired)
    );
    assert_eq!(
        kms.generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut out)
            .map(|_| ()),
        Err(KmsError::VolumeRetired)
    );
    // No longer protected: deleting the key needs no force for it.
    assert!(
        kms.protected_volumes("admin", "disk-key")
            .unwrap()
            .is_empty()
    );
    let mut back = reopen(&mut kms, 13).unwrap();
    assert_eq!(
        back.decrypt_data_key("hypervisor", blob, &ctx).map(|_| ()),
        Err(KmsError::VolumeRetired)
    );
    assert_eq!(
        back.describe_key("admin", "disk-key").unwrap().state,
        KeyState::Enabled
    );
}

/// A version-1 store (written before this fix) still opens: its grants
/// lose the management operations they should never have had.
#[test]
fn version_1_store_opens_without_its_escalated_grants() {
    fn put_str(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(&(s.len() as u32).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    }
    let mut body = Vec::new();
    body.extend_from_slice(&5u64.to_le_bytes());
    body.extend_from_slice(&[7u8; 32]);
    body.extend_from_slice(&1u32.to_le_bytes());
    put_str(&mut body, "old-key");
    body.push(0);
    body.extend_from_slice(&0u64.to_le_bytes());
    body.extend_from_slice(&1_600_000_000u64.to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes());
    body.extend_from_slice(&1_600_000_000u64.to_le_bytes());
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&[0x33; 32]);
    put_str(&mut body, &Policy::allow_all(&["admin"]).to_json());
    body.extend_from_slice(&2u32.to_le_bytes());
    for (id, ops) in [
        ("grant-a", vec!["kms:PutKeyPolicy", "kms:Decrypt"]),
        ("grant-b", vec!["kms:ScheduleKeyDeletion"]),
    ] {
        put_str(&mut body, id);
        put_str(&mut body, "mallory");
        body.extend_from_slice(&(ops.len() as u32).to_le_bytes());
        for op in ops {
            put_str(&mut body, op);
        }
        body.push(0);
        body.push(0);
    }
    body.extend_from_slice(&0u32.to_le_bytes());
    let root = [9u8; 32];
    let sealed = LocalKms::seal_raw_body_for_fuzzing(&root, 1, &body);
    let t = Arc::new(std::sync::atomic::AtomicU64::new(1_700_000_000));
    let mut kms = LocalKms::unseal(
        &root,
        &sealed,
        Box::new(SeededRng(1)),
        Box::new(FakeClock(t)),
        None,
    )
    .unwrap();
    let grants = kms.list_grants("admin", "old-key").unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].operations, vec![Action::Decrypt]);
    assert_eq!(
        kms.put_key_policy("mallory", "old-key", Policy::allow_all(&["mallory"])),
        Err(KmsError::AccessDenied)
    );
    // The chain continues from the old head, now keyed.
    assert_eq!(kms.audit_log()[0].seq, 5);
    assert_eq!(kms.audit_log()[0].prev_hash, [7u8; 32]);
}

/// A crash between the audit sink's write and the store's: the events the
/// sink kept past the sealed position are taken back into the chain when
/// the old store is reopened, so the trail stays one verifiable chain;
/// events that do not follow on are refused and change nothing.
#[test]
fn chain_resumes_after_events_the_store_never_saw() {
    let (mut kms, _) = with_key(12);
    let sink = Switch::default();
    kms.set_audit_sink(Box::new(sink.clone()));
    kms.describe_key("admin", "disk-key").unwrap();
    let root = [0x5au8; 32];
    let sealed = kms.seal(&root).unwrap();
    // Events after the seal: the "crashed" command's.
    kms.disable_key("admin", "disk-key").unwrap();
    kms.enable_key("admin", "disk-key").unwrap();
    let trail: Vec<AuditEvent> = sink.got.lock().unwrap().clone();
    let t = Arc::new(std::sync::atomic::AtomicU64::new(1_700_000_000));
    let open = || {
        LocalKms::unseal(
            &root,
            &sealed,
            Box::new(SeededRng(13)),
            Box::new(FakeClock(t.clone())),
            None,
        )
        .unwrap()
    };

    // Tampered leftovers are refused; the chain stays where it was sealed.
    let mut back = open();
    let sealed_next = back.audit_next_seq();
    let mut forged = trail.clone();
    let last = forged.len() - 1;
    forged[last].principal = "mallory".into();
    assert!(matches!(
        back.resume_audit(&forged),
        Err(ChainError::Hash { .. })
    ));
    assert_eq!(back.audit_next_seq(), sealed_next);
    // A gap is refused too.
    assert!(back.resume_audit(&trail[trail.len() - 1..]).is_err());
    assert_eq!(back.audit_next_seq(), sealed_next);

    // The real leftovers are taken; new events continue the one chain.
    let taken = back.resume_audit(&trail).unwrap();
    assert_eq!(taken, 2);
    let sink2 = Switch::default();
    back.set_audit_sink(Box::new(sink2.clone()));
    back.describe_key("admin", "disk-key").unwrap();
    let mut all = trail.clone();
    all.extend(sink2.got.lock().unwrap().iter().cloned());
    let first = all.first().unwrap().seq;
    back.verify_audit(&all, first == 0, None)
        .expect("one chain across the crash");
    assert_eq!(back.audit_next_seq(), all.last().unwrap().seq + 1);
}
