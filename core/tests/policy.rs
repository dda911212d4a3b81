//! Key policies: an evaluation table, the least-privilege policy, error
//! paths, canonical JSON round trips, and a parser that never panics.

use envol::envelope::Context;
use envol::kms::policy::{Action, Decision, MAX_POLICY_BYTES, MAX_STATEMENTS, Policy, PolicyError};
use proptest::prelude::*;

use Decision::{Allow, ExplicitDeny, ImplicitDeny};

fn ctx<'a>(pairs: &[(&'a str, &'a str)]) -> Context<'a> {
    Context::new(pairs).unwrap()
}

fn parse(json: &str) -> Policy {
    match Policy::parse(json) {
        Ok(p) => p,
        Err(e) => panic!("{e}\n{json}"),
    }
}

fn err(json: &str) -> PolicyError {
    match Policy::parse(json) {
        Ok(p) => panic!("parsed, expected an error: {p:?}\n{json}"),
        Err(e) => e,
    }
}

/// A policy of the given statements (JSON object texts).
fn doc(statements: &[&str]) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    )
}

fn stmt(effect: &str, principals: &str, actions: &str, condition: Option<&str>) -> String {
    let cond = condition.map_or(String::new(), |c| format!(r#","Condition":{c}"#));
    format!(
        r#"{{"Effect":"{effect}","Principal":{{"Envol":{principals}}},"Action":{actions}{cond}}}"#
    )
}

// ---------------------------------------------------------------------------
// Evaluation.

#[test]
fn allow_and_implicit_deny() {
    let p = parse(&doc(&[&stmt(
        "Allow",
        r#"["alice","bob"]"#,
        r#""kms:Decrypt""#,
        None,
    )]));
    let c = Context::empty();
    assert_eq!(p.evaluate("alice", Action::Decrypt, &c), Allow);
    assert_eq!(p.evaluate("bob", Action::Decrypt, &c), Allow);
    // Unlisted principal; principal match is exact.
    assert_eq!(p.evaluate("carol", Action::Decrypt, &c), ImplicitDeny);
    assert_eq!(p.evaluate("Alice", Action::Decrypt, &c), ImplicitDeny);
    assert_eq!(p.evaluate("alice ", Action::Decrypt, &c), ImplicitDeny);
    assert_eq!(p.evaluate("", Action::Decrypt, &c), ImplicitDeny);
    // Action not listed.
    assert_eq!(p.evaluate("alice", Action::Encrypt, &c), ImplicitDeny);
    assert_eq!(
        p.evaluate("alice", Action::GenerateDataKey, &c),
        ImplicitDeny
    );
}

#[test]
fn explicit_deny_wins_in_either_order() {
    let allow = stmt("Allow", r#""alice""#, r#""kms:*""#, None);
    let deny = stmt("Deny", r#""alice""#, r#""kms:Decrypt""#, None);
    let c = Context::empty();
    for p in [parse(&doc(&[&allow, &deny])), parse(&doc(&[&deny, &allow]))] {
        assert_eq!(p.evaluate("alice", Action::Decrypt, &c), ExplicitDeny);
        assert_eq!(p.evaluate("alice", Action::Encrypt, &c), Allow);
        assert_eq!(p.evaluate("bob", Action::Decrypt, &c), ImplicitDeny);
    }
    // A deny alone is an explicit deny, not an implicit one.
    let p = parse(&doc(&[&deny]));
    assert_eq!(p.evaluate("alice", Action::Decrypt, &c), ExplicitDeny);
    assert_eq!(p.evaluate("alice", Action::Encrypt, &c), ImplicitDeny);
}

#[test]
fn principal_wildcards_and_types() {
    let c = Context::empty();
    let p = parse(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt"}}"#);
    assert_eq!(p.evaluate("anyone", Action::Decrypt, &c), Allow);
    assert_eq!(p.evaluate("", Action::Decrypt, &c), Allow);
    let p = parse(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["x","*"]},"Action":"kms:Decrypt"}}"#,
    );
    assert_eq!(p.evaluate("anyone", Action::Decrypt, &c), Allow);
    let p = parse(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"a","Envol":["b"]},"Action":"kms:Decrypt"}}"#,
    );
    assert_eq!(p.evaluate("a", Action::Decrypt, &c), Allow);
    assert_eq!(p.evaluate("b", Action::Decrypt, &c), Allow);
    assert_eq!(p.evaluate("c", Action::Decrypt, &c), ImplicitDeny);
    // `*` inside a name is not a wildcard.
    let p = parse(
        r#"{"Statement":{"Effect":"Allow","Principal":{"Envol":"hyper*"},"Action":"kms:Decrypt"}}"#,
    );
    assert_eq!(p.evaluate("hypervisor", Action::Decrypt, &c), ImplicitDeny);
    assert_eq!(p.evaluate("hyper*", Action::Decrypt, &c), Allow);
}

#[test]
fn action_wildcards() {
    let c = Context::empty();
    let all = parse(&doc(&[&stmt("Allow", r#""a""#, r#""kms:*""#, None)]));
    for a in Action::ALL {
        assert_eq!(all.evaluate("a", a, &c), Allow, "{a:?}");
    }

    let gen_ = parse(&doc(&[&stmt(
        "Allow",
        r#""a""#,
        r#"["kms:Generate*"]"#,
        None,
    )]));
    for a in Action::ALL {
        let want = match a {
            Action::GenerateDataKey | Action::GenerateDataKeyWithoutPlaintext => Allow,
            _ => ImplicitDeny,
        };
        assert_eq!(gen_.evaluate("a", a, &c), want, "{a:?}");
    }

    // `?` is exactly one character.
    let q = parse(&doc(&[&stmt(
        "Allow",
        r#""a""#,
        r#"["kms:ReEncrypt??", "kms:?ecrypt"]"#,
        None,
    )]));
    assert_eq!(q.evaluate("a", Action::ReEncryptTo, &c), Allow);
    assert_eq!(q.evaluate("a", Action::ReEncryptFrom, &c), ImplicitDeny);
    assert_eq!(q.evaluate("a", Action::Decrypt, &c), Allow);
    assert_eq!(q.evaluate("a", Action::Encrypt, &c), ImplicitDeny);

    let mid = parse(&doc(&[&stmt("Allow", r#""a""#, r#""kms:*Key""#, None)]));
    assert_eq!(mid.evaluate("a", Action::DescribeKey, &c), Allow);
    assert_eq!(mid.evaluate("a", Action::GenerateDataKey, &c), Allow);
    assert_eq!(
        mid.evaluate("a", Action::EnableKeyRotation, &c),
        ImplicitDeny
    );
}

#[test]
fn action_names_are_case_insensitive() {
    let c = Context::empty();
    let p = parse(&doc(&[&stmt(
        "Allow",
        r#""a""#,
        r#"["kms:decrypt", "kms:GENERATEDATAKEY*", "kms:describekey"]"#,
        None,
    )]));
    assert_eq!(p.evaluate("a", Action::Decrypt, &c), Allow);
    assert_eq!(p.evaluate("a", Action::GenerateDataKey, &c), Allow);
    assert_eq!(
        p.evaluate("a", Action::GenerateDataKeyWithoutPlaintext, &c),
        Allow
    );
    assert_eq!(p.evaluate("a", Action::DescribeKey, &c), Allow);
    assert_eq!(p.evaluate("a", Action::Encrypt, &c), ImplicitDeny);
    // Canonical JSON spells exact names properly.
    let j = p.to_json();
    assert!(j.contains("\"kms:Decrypt\""), "{j}");
    assert!(j.contains("\"kms:DescribeKey\""), "{j}");
    assert!(j.contains("\"kms:GENERATEDATAKEY*\""), "{j}");
}

#[test]
fn string_equals_and_string_like() {
    let eq = parse(&doc(&[&stmt(
        "Allow",
        r#""h""#,
        r#""kms:Decrypt""#,
        Some(r#"{"StringEquals":{"kms:EncryptionContext:volume":"vol-1"}}"#),
    )]));
    let d = |p: &Policy, pairs: &[(&str, &str)]| p.evaluate("h", Action::Decrypt, &ctx(pairs));
    assert_eq!(d(&eq, &[("volume", "vol-1")]), Allow);
    assert_eq!(d(&eq, &[("volume", "vol-1"), ("other", "x")]), Allow);
    assert_eq!(d(&eq, &[("volume", "vol-2")]), ImplicitDeny);
    assert_eq!(d(&eq, &[("volume", "VOL-1")]), ImplicitDeny);
    assert_eq!(d(&eq, &[("volume", "vol-*")]), ImplicitDeny);
    // Missing key, and a key that differs only in case.
    assert_eq!(d(&eq, &[]), ImplicitDeny);
    assert_eq!(d(&eq, &[("other", "vol-1")]), ImplicitDeny);
    assert_eq!(d(&eq, &[("Volume", "vol-1")]), ImplicitDeny);

    let like = parse(&doc(&[&stmt(
        "Allow",
        r#""h""#,
        r#""kms:Decrypt""#,
        Some(r#"{"StringLike":{"kms:EncryptionContext:volume":"vol-?x*"}}"#),
    )]));
    assert_eq!(d(&like, &[("volume", "vol-1x")]), Allow);
    assert_eq!(d(&like, &[("volume", "vol-1xyz")]), Allow);
    assert_eq!(d(&like, &[("volume", "vol-x")]), ImplicitDeny);
    assert_eq!(d(&like, &[("volume", "vol-12x")]), ImplicitDeny);
    assert_eq!(d(&like, &[("volume", "VOL-1x")]), ImplicitDeny);
    assert_eq!(d(&like, &[]), ImplicitDeny);

    // A Deny with a condition only denies when the condition holds.
    let deny = parse(&doc(&[
        &stmt("Allow", r#""h""#, r#""kms:Decrypt""#, None),
        &stmt(
            "Deny",
            r#""h""#,
            r#""kms:Decrypt""#,
            Some(r#"{"StringLike":{"kms:EncryptionContext:tier":"secret*"}}"#),
        ),
    ]));
    assert_eq!(d(&deny, &[("tier", "secret-1")]), ExplicitDeny);
    assert_eq!(d(&deny, &[("tier", "public")]), Allow);
    assert_eq!(d(&deny, &[]), Allow);
}

#[test]
fn multiple_values_or_and_multiple_keys_and() {
    let p = parse(&doc(&[&stmt(
        "Allow",
        r#""h""#,
        r#""kms:Decrypt""#,
        Some(
            r#"{"StringEquals":{"kms:EncryptionContext:volume":["a","b"],
                                "kms:EncryptionContext:host":"h1"},
                "StringLike":{"kms:EncryptionContext:zone":["eu-*","us-?"]}}"#,
        ),
    )]));
    let d = |pairs: &[(&str, &str)]| p.evaluate("h", Action::Decrypt, &ctx(pairs));
    assert_eq!(
        d(&[("volume", "a"), ("host", "h1"), ("zone", "eu-west")]),
        Allow
    );
    assert_eq!(
        d(&[("volume", "b"), ("host", "h1"), ("zone", "us-1")]),
        Allow
    );
    assert_eq!(
        d(&[("volume", "c"), ("host", "h1"), ("zone", "eu-west")]),
        ImplicitDeny
    );
    assert_eq!(
        d(&[("volume", "a"), ("host", "h2"), ("zone", "eu-west")]),
        ImplicitDeny
    );
    assert_eq!(
        d(&[("volume", "a"), ("host", "h1"), ("zone", "us-12")]),
        ImplicitDeny
    );
    assert_eq!(d(&[("volume", "a"), ("host", "h1")]), ImplicitDeny);
    assert_eq!(d(&[("volume", "a"), ("zone", "eu-1")]), ImplicitDeny);
}

#[test]
fn encryption_context_keys() {
    let p = parse(&doc(&[&stmt(
        "Allow",
        r#""h""#,
        r#""kms:Decrypt""#,
        Some(r#"{"StringEquals":{"kms:EncryptionContextKeys":["volume","host"]}}"#),
    )]));
    let d = |pairs: &[(&str, &str)]| p.evaluate("h", Action::Decrypt, &ctx(pairs));
    assert_eq!(d(&[]), Allow);
    assert_eq!(d(&[("volume", "x")]), Allow);
    assert_eq!(d(&[("volume", "x"), ("host", "y")]), Allow);
    assert_eq!(d(&[("volume", "x"), ("extra", "y")]), ImplicitDeny);
    assert_eq!(d(&[("Volume", "x")]), ImplicitDeny);

    let like = parse(&doc(&[&stmt(
        "Allow",
        r#""h""#,
        r#""kms:Decrypt""#,
        Some(r#"{"StringLike":{"kms:EncryptionContextKeys":"app:*"}}"#),
    )]));
    let d = |pairs: &[(&str, &str)]| like.evaluate("h", Action::Decrypt, &ctx(pairs));
    assert_eq!(d(&[]), Allow);
    assert_eq!(d(&[("app:volume", "1"), ("app:host", "2")]), Allow);
    assert_eq!(d(&[("app:volume", "1"), ("host", "2")]), ImplicitDeny);

    // Combined with a required key: the empty context no longer passes.
    let both = parse(&doc(&[&stmt(
        "Allow",
        r#""h""#,
        r#""kms:Decrypt""#,
        Some(
            r#"{"StringEquals":{"kms:EncryptionContextKeys":"volume"},
                "StringLike":{"kms:EncryptionContext:volume":"vol-*"}}"#,
        ),
    )]));
    let d = |pairs: &[(&str, &str)]| both.evaluate("h", Action::Decrypt, &ctx(pairs));
    assert_eq!(d(&[]), ImplicitDeny);
    assert_eq!(d(&[("volume", "vol-1")]), Allow);
    assert_eq!(d(&[("volume", "vol-1"), ("x", "y")]), ImplicitDeny);
}

// ---------------------------------------------------------------------------
// The least-privilege policy.

const LEAST_PRIVILEGE: &str = r#"{
  "Version": "2012-10-17",
  "Id": "envol-least-privilege",
  "Statement": [
    {
      "Sid": "HypervisorDataKeys",
      "Effect": "Allow",
      "Principal": {"Envol": "hypervisor"},
      "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
      "Condition": {"StringLike": {"kms:EncryptionContext:volume": "vol-*"}}
    },
    {
      "Sid": "AdminKeyManagement",
      "Effect": "Allow",
      "Principal": {"Envol": ["admin"]},
      "Action": [
        "kms:DescribeKey", "kms:EnableKey", "kms:DisableKey",
        "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
        "kms:PutKeyPolicy", "kms:GetKeyPolicy",
        "kms:CreateGrant", "kms:ListGrants", "kms:RetireGrant", "kms:RevokeGrant",
        "kms:RotateKeyOnDemand", "kms:EnableKeyRotation", "kms:DisableKeyRotation",
        "kms:ListProtectedVolumes", "kms:ReadAuditLog",
        "kms:ForgetVolume", "kms:RetireVolume", "kms:CreateKey", "kms:ListKeys",
        "kms:PutServicePolicy", "kms:DeleteKey", "kms:RotateKey"
      ]
    },
    {
      "Sid": "AdminNeverSeesKeys",
      "Effect": "Deny",
      "Principal": {"Envol": "admin"},
      "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:Encrypt"]
    }
  ]
}"#;

const ADMIN_ACTIONS: [Action; 23] = [
    Action::DescribeKey,
    Action::EnableKey,
    Action::DisableKey,
    Action::ScheduleKeyDeletion,
    Action::CancelKeyDeletion,
    Action::PutKeyPolicy,
    Action::GetKeyPolicy,
    Action::CreateGrant,
    Action::ListGrants,
    Action::RetireGrant,
    Action::RevokeGrant,
    Action::RotateKeyOnDemand,
    Action::EnableKeyRotation,
    Action::DisableKeyRotation,
    Action::ListProtectedVolumes,
    Action::ReadAuditLog,
    Action::ForgetVolume,
    Action::RetireVolume,
    Action::CreateKey,
    Action::ListKeys,
    Action::PutServicePolicy,
    Action::DeleteKey,
    Action::RotateKey,
];

const DATA_ACTIONS: [Action; 6] = [
    Action::GenerateDataKey,
    Action::GenerateDataKeyWithoutPlaintext,
    Action::Decrypt,
    Action::Encrypt,
    Action::ReEncryptFrom,
    Action::ReEncryptTo,
];

#[test]
fn least_privilege_policy() {
    let p = parse(LEAST_PRIVILEGE);
    let vol = ctx(&[("volume", "vol-42")]);
    let other = ctx(&[("volume", "snap-42")]);
    let none = Context::empty();

    // Every action is either admin's or a data action, not both.
    assert_eq!(ADMIN_ACTIONS.len() + DATA_ACTIONS.len(), Action::ALL.len());
    for a in Action::ALL {
        assert_ne!(
            ADMIN_ACTIONS.contains(&a),
            DATA_ACTIONS.contains(&a),
            "{a:?}"
        );
    }

    // Hypervisor: data keys and decrypt, only for volumes.
    for a in [
        Action::GenerateDataKey,
        Action::GenerateDataKeyWithoutPlaintext,
        Action::Decrypt,
    ] {
        assert_eq!(p.evaluate("hypervisor", a, &vol), Allow, "{a:?}");
        assert_eq!(p.evaluate("hypervisor", a, &other), ImplicitDeny, "{a:?}");
        assert_eq!(p.evaluate("hypervisor", a, &none), ImplicitDeny, "{a:?}");
    }
    for a in [Action::Encrypt, Action::ReEncryptFrom, Action::ReEncryptTo] {
        assert_eq!(p.evaluate("hypervisor", a, &vol), ImplicitDeny, "{a:?}");
    }
    for a in ADMIN_ACTIONS {
        assert_eq!(p.evaluate("hypervisor", a, &vol), ImplicitDeny, "{a:?}");
    }
    for a in [
        Action::DisableKey,
        Action::ScheduleKeyDeletion,
        Action::PutKeyPolicy,
    ] {
        assert_ne!(p.evaluate("hypervisor", a, &vol), Allow, "{a:?}");
    }

    // Admin: key management in any context, never key material.
    for a in ADMIN_ACTIONS {
        assert_eq!(p.evaluate("admin", a, &none), Allow, "{a:?}");
        assert_eq!(p.evaluate("admin", a, &vol), Allow, "{a:?}");
    }
    for a in DATA_ACTIONS {
        assert_eq!(p.evaluate("admin", a, &vol), ExplicitDeny, "{a:?}");
        assert_eq!(p.evaluate("admin", a, &none), ExplicitDeny, "{a:?}");
    }

    // Nobody else gets anything.
    for a in Action::ALL {
        assert_eq!(p.evaluate("mallory", a, &vol), ImplicitDeny, "{a:?}");
        assert_eq!(p.evaluate("Admin", a, &vol), ImplicitDeny, "{a:?}");
    }

    // A broad statement added later (in front or behind) cannot give admin
    // key material: the explicit deny still wins.
    let broad = r#"{"Sid":"Broad","Effect":"Allow","Principal":"*","Action":"kms:*"}"#;
    let base: serde_json::Value = serde_json::from_str(LEAST_PRIVILEGE).unwrap();
    for front in [true, false] {
        let mut v = base.clone();
        let list = v["Statement"].as_array_mut().unwrap();
        let b: serde_json::Value = serde_json::from_str(broad).unwrap();
        if front {
            list.insert(0, b);
        } else {
            list.push(b);
        }
        let wide = parse(&v.to_string());
        assert_eq!(wide.evaluate("admin", Action::Decrypt, &vol), ExplicitDeny);
        assert_eq!(
            wide.evaluate("admin", Action::GenerateDataKey, &vol),
            ExplicitDeny
        );
        assert_eq!(
            wide.evaluate("admin", Action::ReEncryptTo, &vol),
            ExplicitDeny
        );
        assert_eq!(wide.evaluate("hypervisor", Action::Decrypt, &none), Allow);
        assert_eq!(wide.evaluate("mallory", Action::Decrypt, &none), Allow);
    }
}

// ---------------------------------------------------------------------------
// Errors.

#[track_caller]
fn assert_err_at(json: &str, path: &str, message_contains: &str) {
    let e = err(json);
    assert_eq!(e.path, path, "{e}");
    assert_eq!((e.line, e.column), (0, 0), "{e}");
    assert!(
        e.message.contains(message_contains),
        "{e:?} should mention {message_contains:?}"
    );
    let shown = e.to_string();
    if path.is_empty() {
        assert!(shown.starts_with("policy error: "), "{shown}");
    } else {
        assert!(
            shown.starts_with(&format!("policy error at {path}: ")),
            "{shown}"
        );
    }
}

#[test]
fn syntax_errors_have_line_and_column() {
    let e = err("{\n  \"Statement\": [\n    {\"Effect\" \"Allow\"}\n  ]\n}");
    assert_eq!(e.path, "");
    assert_eq!(e.line, 3);
    assert_eq!(e.column, 15);
    assert_eq!(e.message, "expected `:`");
    assert_eq!(
        e.to_string(),
        "policy error at line 3 column 15: expected `:`"
    );

    let e = err("");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("EOF"), "{e}");

    let e = err(r#"{"Statement": []} trailing"#);
    assert_eq!((e.line, e.column), (1, 19));
    assert!(e.message.contains("trailing"), "{e}");

    // Nesting beyond serde_json's recursion limit is a syntax error too.
    let deep = "[".repeat(10_000);
    let e = err(&deep);
    assert_eq!(e.line, 1);
}

#[test]
fn error_paths() {
    let good = r#"{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt"}"#;

    let e = err(&doc(&[
        good,
        r#"{"Effect":"allow","Principal":"*","Action":"kms:Decrypt"}"#,
    ]));
    assert_eq!(e.path, "Statement[1].Effect");
    assert_eq!(
        e.to_string(),
        "policy error at Statement[1].Effect: expected \"Allow\" or \"Deny\""
    );
    assert_err_at(
        &doc(&[r#"{"Effect":1,"Principal":"*","Action":"kms:Decrypt"}"#]),
        "Statement[0].Effect",
        "\"Allow\" or \"Deny\"",
    );

    // Unknown fields, at every level.
    assert_err_at(
        &doc(&[r#"{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}"#]),
        "Statement[0].Resource",
        "unknown field",
    );
    assert_err_at(r#"{"Statement":[],"Extra":1}"#, "Extra", "unknown field");
    assert_err_at(
        &doc(&[
            r#"{"Effect":"Allow","Principal":{"Envol":"a","Service":"b"},"Action":"kms:Decrypt"}"#,
        ]),
        "Statement[0].Principal.Service",
        "unknown field",
    );
    assert_err_at(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","NotAction":"x"}}"#,
        "Statement.NotAction",
        "unknown field",
    );

    // Duplicate fields are refused, not last-one-wins.
    assert_err_at(
        &doc(&[
            good,
            r#"{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Effect":"Allow"}"#,
        ]),
        "Statement[1].Effect",
        "duplicate",
    );

    // Missing required fields.
    assert_err_at(r#"{"Version":"2012-10-17"}"#, "Statement", "missing");
    assert_err_at(
        &doc(&[r#"{"Principal":"*","Action":"kms:Decrypt"}"#]),
        "Statement[0].Effect",
        "missing",
    );
    assert_err_at(
        &doc(&[good, good, r#"{"Effect":"Allow","Principal":"*"}"#]),
        "Statement[2].Action",
        "missing",
    );
    assert_err_at(
        &doc(&[r#"{"Effect":"Allow","Action":"kms:Decrypt"}"#]),
        "Statement[0].Principal",
        "missing",
    );

    // Actions.
    assert_err_at(
        &doc(&[
            good,
            r#"{"Effect":"Allow","Principal":"*","Action":["kms:Decrypt","kms:Frobnicate"]}"#,
        ]),
        "Statement[1].Action[1]",
        "unknown action \"kms:Frobnicate\"",
    );
    assert_err_at(
        &doc(&[r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}"#]),
        "Statement[0].Action",
        "kms:",
    );
    assert_err_at(
        &doc(&[r#"{"Effect":"Allow","Principal":"*","Action":["*"]}"#]),
        "Statement[0].Action[0]",
        "kms:",
    );
    assert_err_at(
        &doc(&[r#"{"Effect":"Allow","Principal":"*","Action":[]}"#]),
        "Statement[0].Action",
        "no actions",
    );
    assert_err_at(
        &doc(&[r#"{"Effect":"Allow","Principal":"*","Action":["kms:Decrypt",7]}"#]),
        "Statement[0].Action[1]",
        "expected a string",
    );

    // Principals.
    assert_err_at(
        &doc(&[r#"{"Effect":"Allow","Principal":"alice","Action":"kms:Decrypt"}"#]),
        "Statement[0].Principal",
        "expected",
    );
    assert_err_at(
        &doc(&[r#"{"Effect":"Allow","Principal":{"Envol":["a",""]},"Action":"kms:Decrypt"}"#]),
        "Statement[0].Principal.Envol[1]",
        "empty",
    );

    // Conditions.
    let cond = |c: &str| doc(&[good, &stmt("Allow", r#""a""#, r#""kms:Decrypt""#, Some(c))]);
    assert_err_at(
        &cond(
            r#"{"StringEquals":{"kms:EncryptionContext:v":"x"},"NumericEquals":{"kms:EncryptionContext:v":"1"}}"#,
        ),
        "Statement[1].Condition.NumericEquals",
        "NumericEquals",
    );
    assert_err_at(
        &cond(r#"{"ForAllValues:StringLike":{"kms:EncryptionContextKeys":"x"}}"#),
        "Statement[1].Condition.ForAllValues:StringLike",
        "ForAllValues:StringLike",
    );
    assert_err_at(
        &cond(r#"{"StringLike":{"aws:SourceIp":"10.*"}}"#),
        "Statement[1].Condition.StringLike.aws:SourceIp",
        "aws:SourceIp",
    );
    assert_err_at(
        &cond(r#"{"StringLike":{"kms:EncryptionContext:":"x"}}"#),
        "Statement[1].Condition.StringLike.kms:EncryptionContext:",
        "empty",
    );
    assert_err_at(
        &cond(r#"{"StringLike":{"kms:EncryptionContext:v":[]}}"#),
        "Statement[1].Condition.StringLike.kms:EncryptionContext:v",
        "no values",
    );
    assert_err_at(
        &cond(r#"{"StringLike":{"kms:EncryptionContext:v":"a","KMS:ENCRYPTIONCONTEXT:v":"b"}}"#),
        "Statement[1].Condition.StringLike.kms:EncryptionContext:v",
        "duplicate",
    );
    assert_err_at(
        &cond(r#"{"StringLike":"x"}"#),
        "Statement[1].Condition.StringLike",
        "expected an object",
    );

    // Document level.
    assert_err_at(r#"{"Statement":[]}"#, "Statement", "no statements");
    assert_err_at(r#"{"Statement":"x"}"#, "Statement", "expected");
    assert_err_at(
        r#"{"Version":"2008-10-17","Statement":[]}"#,
        "Version",
        "2012-10-17",
    );
    assert_err_at(
        r#"{"Version":20121017,"Statement":[]}"#,
        "Version",
        "string",
    );
    assert_err_at(r#"[]"#, "", "object");
    assert_err_at(r#"{"Id":null,"Statement":[]}"#, "Id", "string");
    assert_err_at(&doc(&[good, "[]"]), "Statement[1]", "expected an object");
}

#[test]
fn size_limits() {
    let good = r#"{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt"}"#;
    let ok: Vec<&str> = vec![good; MAX_STATEMENTS];
    parse(&doc(&ok));
    let too_many: Vec<&str> = vec![good; MAX_STATEMENTS + 1];
    assert_err_at(&doc(&too_many), "Statement", "more than 64 statements");

    // Over the byte limit: refused before parsing, so even garbage gets the
    // size error rather than a syntax error.
    let big = "x".repeat(MAX_POLICY_BYTES + 1);
    assert_err_at(&big, "", "limit");
    let mut padded = doc(&[good]);
    padded.push_str(&" ".repeat(MAX_POLICY_BYTES + 1 - padded.len()));
    assert_err_at(&padded, "", "limit");
    padded.pop();
    parse(&padded);

    // List lengths.
    let names: Vec<String> = (0..65).map(|i| format!("\"p{i}\"")).collect();
    let s = stmt(
        "Allow",
        &format!("[{}]", names.join(",")),
        r#""kms:Decrypt""#,
        None,
    );
    assert_err_at(&doc(&[&s]), "Statement[0].Principal.Envol", "more than 64");
    let s = stmt(
        "Allow",
        &format!("[{}]", names[..64].join(",")),
        r#""kms:Decrypt""#,
        None,
    );
    parse(&doc(&[&s]));

    let actions = vec!["\"kms:Decrypt\""; 65].join(",");
    let s = stmt("Allow", r#""a""#, &format!("[{actions}]"), None);
    assert_err_at(&doc(&[&s]), "Statement[0].Action", "more than 64");

    let values = vec!["\"v\""; 65].join(",");
    let s = stmt(
        "Allow",
        r#""a""#,
        r#""kms:Decrypt""#,
        Some(&format!(
            r#"{{"StringEquals":{{"kms:EncryptionContext:k":[{values}]}}}}"#
        )),
    );
    assert_err_at(
        &doc(&[&s]),
        "Statement[0].Condition.StringEquals.kms:EncryptionContext:k",
        "more than 64",
    );

    let keys: Vec<String> = (0..65)
        .map(|i| format!("\"kms:EncryptionContext:k{i}\":\"v\""))
        .collect();
    let s = stmt(
        "Allow",
        r#""a""#,
        r#""kms:Decrypt""#,
        Some(&format!(r#"{{"StringEquals":{{{}}}}}"#, keys.join(","))),
    );
    assert_err_at(&doc(&[&s]), "Statement[0].Condition", "more than 64");
}

// ---------------------------------------------------------------------------
// Canonical JSON.

#[track_caller]
fn round_trip(p: &Policy) {
    let j = p.to_json();
    let back = parse(&j);
    assert_eq!(&back, p, "{j}");
    assert_eq!(back.to_json(), j);
}

#[test]
fn to_json_round_trips() {
    round_trip(&parse(LEAST_PRIVILEGE));
    round_trip(&parse(
        r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"kms:decrypt"}}"#,
    ));
    round_trip(&parse(&doc(&[&stmt(
        "Allow",
        r#"["a","*"]"#,
        r#"["kms:Re?ncrypt*","kms:ListGrants"]"#,
        Some(
            r#"{"StringLike":{"kms:EncryptionContext:zone":["eu-*","us-?"],
                              "kms:encryptioncontextkeys":"app:*"},
                "StringEquals":{"kms:EncryptionContext:vol \"quoted\" ü":"a\\b\n"}}"#,
        ),
    )])));
    round_trip(&parse(
        r#"{"Id":"x","Statement":[{"Sid":"s","Effect":"Allow",
            "Principal":{"AWS":["arn:aws:iam::1:root"],"Envol":"e"},"Action":"kms:*"}]}"#,
    ));
    round_trip(&parse(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":[]},"Action":"kms:*",
            "Condition":{}}]}"#,
    ));

    let all = Policy::allow_all(&["hypervisor", "admin"]);
    round_trip(&all);
    for a in Action::ALL {
        assert_eq!(all.evaluate("admin", a, &Context::empty()), Allow);
        assert_eq!(all.evaluate("hypervisor", a, &Context::empty()), Allow);
        assert_eq!(all.evaluate("other", a, &Context::empty()), ImplicitDeny);
    }
    let nobody = Policy::allow_all(&[]);
    round_trip(&nobody);
    assert_eq!(
        nobody.evaluate("x", Action::Decrypt, &Context::empty()),
        ImplicitDeny
    );
    let anyone = Policy::allow_all(&["*"]);
    round_trip(&anyone);
    assert_eq!(
        anyone.evaluate("x", Action::Decrypt, &Context::empty()),
        Allow
    );

    // Equal meaning, different spelling: equal policies.
    assert_eq!(
        parse(
            r#"{"Statement":{"Effect":"Allow","Principal":{"Envol":"a"},"Action":"kms:DECRYPT"}}"#
        ),
        parse(
            r#"{"Statement":[{"Action":["kms:Decrypt"],"Principal":{"Envol":["a"]},"Effect":"Allow"}]}"#
        ),
    );
}

// ---------------------------------------------------------------------------
// The parser is total.

#[derive(Clone, Debug)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes biased towards JSON structure so mutations reach deep code.
    let byte = prop_oneof![
        3 => proptest::sample::select(b"{}[]\",:*?\\ 0aAkms-".to_vec()),
        1 => any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
    ]
}

fn check_total(text: &str) {
    match Policy::parse(text) {
        Ok(p) => {
            // Whatever parses round-trips and evaluates.
            let j = p.to_json();
            assert_eq!(Policy::parse(&j).as_ref(), Ok(&p), "{j}");
            let c = ctx(&[("volume", "vol-1"), ("host", "h")]);
            for a in Action::ALL {
                let _ = p.evaluate("hypervisor", a, &c);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_arbitrary_strings(s in any::<String>()) {
        check_total(&s);
    }

    #[test]
    fn parse_never_panics_on_json_like_strings(s in "[{}\\[\\]\",:*? a-zA-Z0-9\\\\]{0,200}") {
        check_total(&s);
    }

    #[test]
    fn parse_never_panics_on_mutated_policies(
        muts in proptest::collection::vec(mutation(), 1..8)
    ) {
        let mut bytes = LEAST_PRIVILEGE.as_bytes().to_vec();
        for m in muts {
            match m {
                Mutation::Replace(i, b) => {
                    let n = bytes.len();
                    if n > 0 {
                        bytes[i % n] = b;
                    }
                }
                Mutation::Insert(i, b) => {
                    let n = bytes.len();
                    bytes.insert(i % (n + 1), b);
                }
                Mutation::Delete(i) => {
                    let n = bytes.len();
                    if n > 0 {
                        bytes.remove(i % n);
                    }
                }
            }
        }
        check_total(&String::from_utf8_lossy(&bytes));
    }
}
