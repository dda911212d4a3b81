//! `AwsKms` against moto (`moto_server`, AWS KMS emulated on 127.0.0.1)
//! and, for what moto never answers, against recorded AWS responses served
//! by a tiny HTTP server in this file.
//!
//! moto is found through `ENVOL_MOTO_ENDPOINT` (`.ci/run` starts the server
//! and sets it) or started here from `moto_server` on a free port, and
//! stopped when this process ends. Without moto the tests that need it are
//! compiled `#[ignore]` (the build script looks for it), so `cargo test`
//! reports them as ignored with the reason; with `CI` or
//! `ENVOL_REQUIRE_SERVICES=1` they run and fail.

#![cfg(feature = "aws")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use envol::envelope::{Algorithm, Context, MAX_BLOB, WrappedKey};
use envol::kms::{Kms, KmsError};
use envol::xts::KeySize;
use envol_kms::aws::{AwsConfig, AwsCredentials, AwsKms, RetryPolicy, classify};
use serde_json::json;
use zeroize::Zeroizing;

fn config(endpoint: &str) -> AwsConfig {
    AwsConfig::new(
        endpoint,
        "us-east-1",
        AwsCredentials {
            access_key_id: "AKIDENVOLTEST".into(),
            secret_access_key: Zeroizing::new("envol-test-secret".into()),
            session_token: None,
        },
    )
}

/// The moto endpoint, starting a server if none was given.
fn moto() -> Option<&'static str> {
    static ENDPOINT: OnceLock<Option<String>> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(e) = std::env::var("ENVOL_MOTO_ENDPOINT") {
                return Some(e);
            }
            let port = TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            // A shell watchdog stops the server when this test process ends.
            let script = format!(
                "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
                 trap 'kill $m 2>/dev/null' EXIT; \
                 while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done",
                pid = std::process::id()
            );
            let has_moto = Command::new("sh")
                .args(["-c", "command -v moto_server"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !has_moto {
                return None;
            }
            Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .spawn()
                .ok()?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(format!("http://127.0.0.1:{port}"));
                }
                thread::sleep(Duration::from_millis(200));
            }
            None
        })
        .as_deref()
}

fn client() -> AwsKms {
    // Reached only when the build found moto (otherwise the tests are
    // compiled `#[ignore]`, see build/services.rs): a test that cannot run
    // here fails rather than passing unrun.
    let endpoint =
        moto().expect("moto is needed: pip install 'moto[server]' (or set ENVOL_MOTO_ENDPOINT)");
    AwsKms::new(config(endpoint)).unwrap()
}

fn create_key(kms: &mut AwsKms) -> String {
    let k = kms
        .call("CreateKey", &json!({"Description": "envol test"}))
        .unwrap();
    k["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
}

#[test]
#[cfg_attr(
    envol_no_moto,
    ignore = "moto not installed: pip install 'moto[server]' or set ENVOL_MOTO_ENDPOINT"
)]
fn volume_lifecycle_through_aws_kms() {
    let mut kms = client();
    let a = create_key(&mut kms);
    let b = create_key(&mut kms);
    kms.call(
        "CreateAlias",
        &json!({"AliasName": "alias/envol-vol-b", "TargetKeyId": b}),
    )
    .unwrap();
    // Created under the key id, rewrapped under an alias: the header names
    // the keys AWS reports (their ids), not the alias.
    let (first, second) = common::volume_lifecycle(
        &mut kms,
        "hypervisor",
        &a,
        "alias/envol-vol-b",
        Algorithm::AwsKms,
        1,
    );
    assert_eq!((first.as_str(), second.as_str()), (a.as_str(), b.as_str()));
}

#[test]
#[cfg_attr(
    envol_no_moto,
    ignore = "moto not installed: pip install 'moto[server]' or set ENVOL_MOTO_ENDPOINT"
)]
fn data_keys_agree_with_the_service() {
    let mut kms = client();
    let key = create_key(&mut kms);
    let ctx = Context::new(&[("volume", "vol-7"), ("envol:sector", "4096")]).unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let (dek, n) = kms
        .generate_data_key("p", &key, KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    assert_eq!(dek.as_bytes().len(), 64);
    let first = blob[..n].to_vec();
    let back = kms.decrypt_data_key("p", &blob[..n], &ctx).unwrap();
    assert_eq!(back.as_bytes(), dek.as_bytes());
    // Independent of envol's decoding: the service's own Decrypt of the
    // carried ciphertext gives the same bytes.
    let w = WrappedKey::parse(&blob[..n]).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = kms
        .call(
            "Decrypt",
            &json!({"CiphertextBlob": b64.encode(w.ciphertext()),
                    "EncryptionContext": {"volume": "vol-7", "envol:sector": "4096"}}),
        )
        .unwrap();
    assert_eq!(
        b64.decode(raw["Plaintext"].as_str().unwrap()).unwrap(),
        dek.as_bytes()
    );

    // 256-bit keys for XTS-AES-128; and the wrapped-only form.
    let (k128, m) = kms
        .generate_data_key("p", &key, KeySize::Aes128, &ctx, &mut blob)
        .unwrap();
    assert_eq!(k128.as_bytes().len(), 32);
    assert_eq!(
        kms.decrypt_data_key("p", &blob[..m], &ctx)
            .unwrap()
            .as_bytes(),
        k128.as_bytes()
    );
    let m = kms
        .generate_data_key_without_plaintext("p", &key, KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    assert_eq!(
        kms.decrypt_data_key("p", &blob[..m], &ctx)
            .unwrap()
            .as_bytes()
            .len(),
        64
    );

    // ReEncrypt to another context and key: the old context no longer opens
    // the new blob, the new one does, and the key is the same.
    let key2 = create_key(&mut kms);
    let ctx2 = Context::new(&[("volume", "vol-8")]).unwrap();
    let mut re = [0u8; MAX_BLOB];
    let r = kms
        .re_encrypt("p", &first, &ctx, &key2, &ctx2, &mut re)
        .unwrap();
    assert_eq!(WrappedKey::parse(&re[..r]).unwrap().key_id(), key2);
    assert_eq!(
        kms.decrypt_data_key("p", &re[..r], &ctx2)
            .unwrap()
            .as_bytes(),
        dek.as_bytes()
    );
    assert_eq!(
        kms.decrypt_data_key("p", &re[..r], &ctx).err(),
        Some(KmsError::InvalidCiphertext)
    );

    // Small secrets.
    let mut sb = [0u8; MAX_BLOB];
    let sn = kms
        .encrypt("p", &key, &ctx, b"a small secret", &mut sb)
        .unwrap();
    let mut out = [0u8; 64];
    let on = kms.decrypt("p", &sb[..sn], &ctx, &mut out).unwrap();
    assert_eq!(&out[..on], b"a small secret");
    assert_eq!(
        kms.decrypt("p", &sb[..sn], &ctx, &mut out[..4]),
        Err(KmsError::BufferTooSmall)
    );
}

#[test]
#[cfg_attr(
    envol_no_moto,
    ignore = "moto not installed: pip install 'moto[server]' or set ENVOL_MOTO_ENDPOINT"
)]
fn refusals_from_the_service_and_before_it() {
    let mut kms = client();
    let key = create_key(&mut kms);
    let ctx = Context::new(&[("volume", "vol-1")]).unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let (_, n) = kms
        .generate_data_key("p", &key, KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    let wrong = Context::new(&[("volume", "vol-2")]).unwrap();
    assert_eq!(
        kms.decrypt_data_key("p", &blob[..n], &wrong).err(),
        Some(KmsError::InvalidCiphertext)
    );
    assert_eq!(kms.last_error().unwrap().code, "InvalidCiphertextException");
    assert_eq!(
        kms.decrypt_data_key("p", &blob[..n], &Context::empty())
            .err(),
        Some(KmsError::InvalidCiphertext)
    );
    // A key that does not exist.
    let missing = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        kms.generate_data_key("p", missing, KeySize::Aes256, &ctx, &mut blob)
            .err(),
        Some(KmsError::NotFound)
    );
    // The blob names the key Decrypt must use: renaming it is refused.
    let w = WrappedKey::parse(&blob[..n]).unwrap();
    let other = create_key(&mut kms);
    let renamed = WrappedKey::from_opaque(Algorithm::AwsKms, &other, w.ciphertext()).unwrap();
    let mut rb = [0u8; MAX_BLOB];
    let rn = renamed.encode(&mut rb).unwrap();
    assert!(kms.decrypt_data_key("p", &rb[..rn], &ctx).is_err());
    // Blobs that are not AWS's (envol's own, KMIP's) are refused without a
    // request.
    let before = kms.attempts();
    let mk = envol::envelope::MasterKey::from_bytes([7; 32]);
    let mut local = [0u8; MAX_BLOB];
    let ln = mk
        .seal_with_nonce("k", 1, &ctx, &[1; 64], &[0; 12], &mut local)
        .unwrap();
    let kmip =
        WrappedKey::from_gcm_parts(Algorithm::KmipAes256Gcm, "k", 1, [0; 12], &[1; 64], [2; 16])
            .unwrap();
    let mut kb = [0u8; MAX_BLOB];
    let kn = kmip.encode(&mut kb).unwrap();
    for bad in [
        &local[..ln],
        &kb[..kn],
        &blob[..n - 1],
        b"EVWK".as_slice(),
        &[],
    ] {
        assert_eq!(
            kms.decrypt_data_key("p", bad, &ctx).err(),
            Some(KmsError::InvalidCiphertext)
        );
    }
    assert_eq!(kms.attempts(), before);
    // Bad arguments are refused before a request, too.
    assert_eq!(
        kms.generate_data_key("p", "bad id", KeySize::Aes256, &ctx, &mut blob)
            .err(),
        Some(KmsError::InvalidArgument)
    );
    assert_eq!(kms.attempts(), before);
    // A short output buffer fails and leaves it untouched.
    let mut small = [0xa5u8; 16];
    assert_eq!(
        kms.generate_data_key("p", &key, KeySize::Aes256, &ctx, &mut small)
            .err(),
        Some(KmsError::BufferTooSmall)
    );
    assert_eq!(small, [0xa5; 16]);
}

/// One canned answer: status, `__type` (or none), extra headers.
struct Canned {
    status: u16,
    body: String,
    delay: Duration,
}

fn canned(status: u16, body: &str) -> Canned {
    Canned {
        status,
        body: body.into(),
        delay: Duration::ZERO,
    }
}

/// Serves `answers` in order, one per connection, and reports each
/// request's head and body.
fn fake_kms(answers: Vec<Canned>) -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for a in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let _ = tx.send((head, String::from_utf8_lossy(&body).into_owned()));
            thread::sleep(a.delay);
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 {} X\r\ncontent-type: application/x-amz-json-1.1\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{}",
                a.status,
                a.body.len(),
                a.body
            );
        }
    });
    (format!("http://{addr}"), rx)
}

fn fast_retries(mut cfg: AwsConfig) -> AwsConfig {
    cfg.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        budget: Duration::from_secs(5),
    };
    cfg
}

/// Error bodies as AWS KMS sends them (status 400 unless noted), for the
/// errors moto never produces: it does not refuse a disabled key or one
/// pending deletion, never throttles, never fails internally, and does not
/// check signatures or tokens.
#[test]
fn recorded_service_errors_map_onto_typed_errors() {
    let recorded: &[(u16, &str, KmsError, bool)] = &[
        (
            400,
            r#"{"__type":"DisabledException","message":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab is disabled."}"#,
            KmsError::Disabled,
            false,
        ),
        (
            400,
            r#"{"__type":"KMSInvalidStateException","message":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab is pending deletion."}"#,
            KmsError::PendingDeletion,
            false,
        ),
        (
            400,
            r#"{"__type":"AccessDeniedException","Message":"User: arn:aws:iam::111122223333:user/hv is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab because no identity-based policy allows the kms:Decrypt action"}"#,
            KmsError::AccessDenied,
            false,
        ),
        (
            400,
            r#"{"__type":"IncorrectKeyException","message":"The key ID in the request does not identify a CMK that can perform this operation."}"#,
            KmsError::InvalidCiphertext,
            false,
        ),
        (
            400,
            r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
            KmsError::AccessDenied,
            false,
        ),
        (
            400,
            r#"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#,
            KmsError::AccessDenied,
            false,
        ),
        (
            400,
            r#"{"__type":"ValidationException","message":"1 validation error detected: Value '2000' at 'numberOfBytes' failed to satisfy constraint"}"#,
            KmsError::InvalidArgument,
            false,
        ),
        (
            400,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            KmsError::Unavailable,
            true,
        ),
        (
            500,
            r#"{"__type":"KMSInternalException"}"#,
            KmsError::Unavailable,
            true,
        ),
        (503, "", KmsError::Unavailable, true),
    ];
    let ctx = Context::new(&[("volume", "vol-1")]).unwrap();
    let blob = {
        let w = WrappedKey::from_opaque(Algorithm::AwsKms, "k", &[9; 100]).unwrap();
        let mut b = [0u8; 256];
        let n = w.encode(&mut b).unwrap();
        b[..n].to_vec()
    };
    for (status, body, want, retried) in recorded {
        let attempts = if *retried { 3 } else { 1 };
        let (endpoint, rx) = fake_kms((0..attempts).map(|_| canned(*status, body)).collect());
        let mut kms = AwsKms::new(fast_retries(config(&endpoint))).unwrap();
        assert_eq!(
            kms.decrypt_data_key("p", &blob, &ctx).err(),
            Some(*want),
            "{body}"
        );
        assert_eq!(kms.attempts(), attempts as u64, "{body}");
        assert_eq!(
            classify(*status, &kms.last_error().unwrap().code),
            (*want, *retried)
        );
        let (head, sent) = rx.recv().unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post / http/1.1"), "{head}");
        assert!(
            head.contains("x-amz-target: trentservice.decrypt"),
            "{head}"
        );
        assert!(
            head.contains("authorization: aws4-hmac-sha256 credential=akidenvoltest/")
                && head.contains("/us-east-1/kms/aws4_request"),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(v["KeyId"], "k");
        assert_eq!(v["EncryptionContext"]["volume"], "vol-1");
    }
}

#[test]
fn throttling_is_retried_until_it_passes() {
    let ok = r#"{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/k2","Plaintext":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="}"#;
    let (endpoint, _rx) = fake_kms(vec![
        canned(
            400,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        canned(500, r#"{"__type":"KMSInternalException"}"#),
        canned(200, ok),
    ]);
    let mut kms = AwsKms::new(fast_retries(config(&endpoint))).unwrap();
    let w = WrappedKey::from_opaque(Algorithm::AwsKms, "k2", &[1; 50]).unwrap();
    let mut b = [0u8; 128];
    let n = w.encode(&mut b).unwrap();
    let ctx = Context::empty();
    let dek = kms.decrypt_data_key("p", &b[..n], &ctx).unwrap();
    assert_eq!(dek.as_bytes(), (0u8..64).collect::<Vec<_>>().as_slice());
    assert_eq!(kms.attempts(), 3);
    assert!(kms.last_error().is_none());
    // A key of a size no data key has is refused.
    let (endpoint, _rx) = fake_kms(vec![canned(200, r#"{"Plaintext":"AAEC"}"#)]);
    let mut kms = AwsKms::new(config(&endpoint)).unwrap();
    assert_eq!(
        kms.decrypt_data_key("p", &b[..n], &ctx).err(),
        Some(KmsError::InvalidCiphertext)
    );
}

#[test]
fn every_attempt_has_a_timeout_and_the_call_a_budget() {
    // A server that answers too late, every time.
    let slow = |_| Canned {
        status: 200,
        body: "{}".into(),
        delay: Duration::from_millis(1500),
    };
    let (endpoint, _rx) = fake_kms((0..3).map(slow).collect());
    let mut cfg = fast_retries(config(&endpoint));
    cfg.timeout = Duration::from_millis(300);
    let mut kms = AwsKms::new(cfg).unwrap();
    let w = WrappedKey::from_opaque(Algorithm::AwsKms, "k", &[1; 50]).unwrap();
    let mut b = [0u8; 128];
    let n = w.encode(&mut b).unwrap();
    let t = Instant::now();
    assert_eq!(
        kms.decrypt_data_key("p", &b[..n], &Context::empty()).err(),
        Some(KmsError::Unavailable)
    );
    assert_eq!(kms.attempts(), 3);
    assert_eq!(kms.last_error().unwrap().code, "Timeout");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // Nothing listening: connection refused, retried, then Unavailable.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut kms = AwsKms::new(fast_retries(config(&format!("http://127.0.0.1:{port}")))).unwrap();
    assert_eq!(
        kms.decrypt_data_key("p", &b[..n], &Context::empty()).err(),
        Some(KmsError::Unavailable)
    );
    assert_eq!(kms.attempts(), 3);
}
