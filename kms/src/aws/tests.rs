use super::*;

#[test]
fn shared_files_and_precedence() {
    let creds = "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = sdef\n\
                 [ops]\naws_access_key_id=AKIDOPS\naws_secret_access_key=sops\naws_session_token = tok\n";
    let config = "[default]\nregion = eu-west-1\n[profile ops]\nregion=us-east-2\n\
                  endpoint_url = http://127.0.0.1:4566\n";
    let none = |_: &str| None;
    let c = AwsConfig::from_sources(&none, creds, config).unwrap();
    assert_eq!(c.region, "eu-west-1");
    assert_eq!(c.endpoint, "https://kms.eu-west-1.amazonaws.com");
    assert_eq!(c.credentials.access_key_id, "AKIDDEF");
    assert_eq!(c.credentials.secret_access_key.as_str(), "sdef");
    assert!(c.credentials.session_token.is_none());

    let ops = |k: &str| (k == "AWS_PROFILE").then(|| "ops".to_string());
    let c = AwsConfig::from_sources(&ops, creds, config).unwrap();
    assert_eq!(
        (c.region.as_str(), c.endpoint.as_str()),
        ("us-east-2", "http://127.0.0.1:4566")
    );
    assert_eq!(c.credentials.access_key_id, "AKIDOPS");
    assert_eq!(
        c.credentials.session_token.as_deref().map(String::as_str),
        Some("tok")
    );

    // The environment wins over the files.
    let env = |k: &str| match k {
        "AWS_ACCESS_KEY_ID" => Some("AKIDENV".into()),
        "AWS_SECRET_ACCESS_KEY" => Some("senv".into()),
        "AWS_REGION" => Some("ap-south-1".into()),
        "AWS_ENDPOINT_URL_KMS" => Some("http://localhost:9/".into()),
        "AWS_ENDPOINT_URL" => Some("http://ignored:1".into()),
        _ => None,
    };
    let c = AwsConfig::from_sources(&env, creds, config).unwrap();
    assert_eq!(c.credentials.access_key_id, "AKIDENV");
    assert_eq!(
        (c.region.as_str(), c.endpoint.as_str()),
        ("ap-south-1", "http://localhost:9/")
    );
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("senv") && dbg.contains("AKIDENV"), "{dbg}");

    assert_eq!(
        AwsConfig::from_sources(&none, "", "").unwrap_err(),
        ConfigError::NoRegion
    );
    let region_only = |k: &str| (k == "AWS_REGION").then(|| "x".to_string());
    assert_eq!(
        AwsConfig::from_sources(&region_only, "", "").unwrap_err(),
        ConfigError::NoCredentials
    );
    let bad = |k: &str| match k {
        "AWS_REGION" => Some("x".into()),
        "AWS_ENDPOINT_URL" => Some("ftp://h".into()),
        _ => None,
    };
    assert!(matches!(
        AwsConfig::from_sources(&bad, creds, ""),
        Err(ConfigError::BadEndpoint(_))
    ));
}

#[test]
fn endpoints_split() {
    assert_eq!(
        split_endpoint("http://127.0.0.1:5000", false).unwrap(),
        ("http://127.0.0.1:5000/".into(), "127.0.0.1:5000".into())
    );
    assert_eq!(
        split_endpoint("https://kms.eu-west-1.amazonaws.com/", false)
            .unwrap()
            .1,
        "kms.eu-west-1.amazonaws.com"
    );
    for bad in [
        "",
        "kms.amazonaws.com",
        "http://",
        "http://u@h/",
        "https:// h",
    ] {
        assert!(split_endpoint(bad, true).is_err(), "{bad}");
    }
    assert_eq!(
        short_key_id("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        "1234abcd-12ab-34cd-56ef-1234567890ab"
    );
    assert_eq!(short_key_id("alias/x"), "alias/x");
}

#[test]
fn cleartext_only_to_loopback_or_when_asked() {
    for ok in [
        "http://127.0.0.1:5000",
        "http://127.1.2.3/",
        "http://localhost:4566",
        "http://LOCALHOST",
        "http://[::1]:8080/",
        "https://10.0.0.1",
        "https://kms.us-east-1.amazonaws.com",
    ] {
        assert!(split_endpoint(ok, false).is_ok(), "{ok}");
    }
    for clear in [
        "http://10.0.0.1",
        "http://kms.us-east-1.amazonaws.com",
        "http://127.0.0.1.evil.example:80",
        "http://localhost.evil.example",
        "http://[::2]:80",
        "http://[::1]x",
        "http://0.0.0.0:5000",
    ] {
        match split_endpoint(clear, false) {
            Err(ConfigError::CleartextEndpoint(e)) => assert_eq!(e, clear),
            other => panic!("{clear}: {other:?}"),
        }
        assert!(
            split_endpoint(clear, true).is_ok() || clear == "http://[::1]x",
            "{clear} with the opt-in"
        );
    }
    let lookup = |name: &str| match name {
        "AWS_REGION" => Some("us-east-1".to_string()),
        "AWS_ACCESS_KEY_ID" => Some("AKID".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
        "ENVOL_KMS_ENDPOINT" | "AWS_ENDPOINT_URL_KMS" | "AWS_ENDPOINT_URL" => {
            Some("http://192.0.2.7:4566".to_string())
        }
        _ => None,
    };
    assert!(matches!(
        AwsConfig::from_env_with(&lookup),
        Err(ConfigError::CleartextEndpoint(_))
    ));
    let opted = |name: &str| match name {
        "ENVOL_AWS_INSECURE_CLEARTEXT_HTTP" => Some("1".to_string()),
        other => lookup(other),
    };
    let cfg = AwsConfig::from_env_with(&opted).expect("opt-in");
    assert!(cfg.insecure_cleartext_http);
    assert!(AwsKms::new(cfg).is_ok());
}

#[test]
fn payload_hash_matches_the_sigv4_test_suite() {
    // SHA-256 of the empty payload, as in every SigV4 example request.
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
