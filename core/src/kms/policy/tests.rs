use super::*;

#[test]
fn wildcards() {
    let cases: &[(&str, &str, bool)] = &[
        ("", "", true),
        ("*", "", true),
        ("", "a", false),
        ("*", "anything", true),
        ("vol-*", "vol-", true),
        ("vol-*", "vol-123", true),
        ("vol-*", "vo", false),
        ("vol-?", "vol-1", true),
        ("vol-?", "vol-12", false),
        ("vol-?", "vol-", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("*a", "bbbba", true),
        ("*a", "bbbab", false),
        ("a**", "a", true),
        ("?", "é", true),
        ("??", "é", false),
        ("x?z", "xéz", true),
    ];
    for &(p, t, want) in cases {
        assert_eq!(wildcard_match(p, t, false), want, "{p:?} vs {t:?}");
    }
    assert!(wildcard_match("generate*", "GenerateDataKey", true));
    assert!(!wildcard_match("generate*", "GenerateDataKey", false));
}

#[test]
fn pathological_pattern_is_fast() {
    let pattern = "*a".repeat(2000) + "b";
    let text = "a".repeat(256);
    assert!(!wildcard_match(&pattern, &text, false));
}

#[test]
fn action_names() {
    for a in Action::ALL {
        assert_eq!(Action::from_name(a.name()), Some(a));
        assert_eq!(a.name(), format!("kms:{a:?}"));
    }
    assert_eq!(Action::from_name("kms:dEcRyPt"), Some(Action::Decrypt));
    assert_eq!(Action::from_name("Decrypt"), None);
    assert_eq!(Action::from_name("kms:Decrypt*"), None);
}

#[test]
fn duplicate_fields() {
    let e = Policy::parse(
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:*","Effect":"Allow"}]}"#,
    )
    .unwrap_err();
    assert_eq!(e.path, "Statement[0].Effect");
    let e = Policy::parse(r#"{"Id":"a","\u0049d":"b","Statement":[]}"#).unwrap_err();
    assert_eq!(e.path, "Id");
}
