//! `envol` on the remote key services: a SoftHSM2 token (keys created in
//! the token by the command), AWS KMS (moto at `ENVOL_MOTO_ENDPOINT`, keys
//! created through the AWS API) and a KMIP server (PyKMIP, started here;
//! keys created by the command). Without them these tests are
//! compiled `#[ignore]` with the reason (`build/services.rs`).

#![cfg_attr(
    any(envol_no_softhsm, envol_no_moto_endpoint, envol_no_pykmip),
    allow(dead_code, unused_imports)
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn envol(env: &[(&str, String)], args: &[&str]) -> (i32, Value) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_envol"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ENVOL_") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("--json")
        .args(args)
        .stdin(Stdio::null());
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let v: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{e}: {out}{}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code().unwrap_or(-1), v)
}

fn ok(env: &[(&str, String)], args: &[&str]) -> Value {
    let (code, v) = envol(env, args);
    assert_eq!(code, 0, "envol {args:?}: {v}");
    v
}

/// The volume lifecycle on whatever service `env` selects.
fn lifecycle(env: &[(&str, String)], d: &Path, key_a: &str, key_b: &str) {
    let disk = d.join("disk.img").display().to_string();
    let plain: Vec<u8> = (0..(2 << 20))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(d.join("plain.img"), &plain).unwrap();
    ok(
        env,
        &["volume", "create", &disk, "--size", "4M", "--key", key_a],
    );
    ok(
        env,
        &[
            "volume",
            "import",
            &d.join("plain.img").display().to_string(),
            &disk,
        ],
    );
    let i = ok(env, &["volume", "inspect", &disk]);
    assert_eq!(i["mac"]["verified"], true, "{i}");
    ok(env, &["volume", "rewrap", &disk, "--key", key_b]);
    ok(env, &["volume", "check", &disk]);
    ok(
        env,
        &[
            "volume",
            "export",
            &disk,
            &d.join("back.img").display().to_string(),
        ],
    );
    let back = std::fs::read(d.join("back.img")).unwrap();
    assert!(back[..plain.len()] == plain[..]);
}

#[test]
#[cfg_attr(
    envol_no_softhsm,
    ignore = "SoftHSM2 not installed: apt-get install softhsm2"
)]
fn on_a_softhsm2_token() {
    let d = dir("pkcs11");
    let conf = d.join("softhsm2.conf");
    std::fs::create_dir_all(d.join("tokens")).unwrap();
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\n", d.join("tokens").display()),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "envol-cli",
            "--so-pin",
            "12345678",
            "--pin",
            "4321",
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    std::fs::write(d.join("pin"), "4321\n").unwrap();
    let module = std::env::var("ENVOL_PKCS11_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into());
    let env = [
        ("SOFTHSM2_CONF", conf.display().to_string()),
        ("ENVOL_KMS", "pkcs11".into()),
        ("ENVOL_PKCS11_MODULE", module),
        ("ENVOL_PKCS11_TOKEN", "envol-cli".into()),
        ("ENVOL_PRINCIPAL", "hypervisor".into()),
    ];
    let pin = d.join("pin").display().to_string();
    let with_pin = |args: &[&str]| {
        let mut a = vec!["--pkcs11-pin-file", pin.as_str()];
        a.extend_from_slice(args);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    for k in ["disk-key", "disk-key-2"] {
        let a = with_pin(&["key", "create", k]);
        ok(&env, &a.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let mut env_pin = env.to_vec();
    env_pin.push(("ENVOL_PKCS11_PIN", "4321".into()));
    lifecycle(&env_pin, &d, "disk-key", "disk-key-2");
    // A wrong PIN is refused with the token's answer.
    let mut wrong = env.to_vec();
    wrong.push(("ENVOL_PKCS11_PIN", "0000".into()));
    let (code, v) = envol(
        &wrong,
        &["volume", "check", &d.join("disk.img").display().to_string()],
    );
    assert_eq!(code, 1);
    assert_eq!(v["status"], "ENVOL_ERR_ACCESS_DENIED", "{v}");
}

#[test]
#[cfg_attr(
    envol_no_moto_endpoint,
    ignore = "needs a running moto at ENVOL_MOTO_ENDPOINT"
)]
fn on_aws_kms() {
    use envol_kms::aws::{AwsConfig, AwsCredentials, AwsKms};
    let endpoint = std::env::var("ENVOL_MOTO_ENDPOINT").expect("ENVOL_MOTO_ENDPOINT");
    let mut admin = AwsKms::new(AwsConfig::new(
        endpoint.clone(),
        "us-east-1",
        AwsCredentials {
            access_key_id: "testing".into(),
            secret_access_key: zeroize::Zeroizing::new("testing".into()),
            session_token: None,
        },
    ))
    .unwrap();
    let mut key = || {
        let k = admin
            .call(
                "CreateKey",
                &serde_json::json!({"Description": "envol cli"}),
            )
            .unwrap();
        k["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
    };
    let (a, b) = (key(), key());
    let d = dir("aws");
    let env = [
        ("ENVOL_KMS", "aws".to_string()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_ENDPOINT_URL_KMS", endpoint),
        ("ENVOL_PRINCIPAL", "hypervisor".into()),
        ("HOME", d.display().to_string()),
    ];
    lifecycle(&env, &d, &a, &b);
    // Key management on AWS is AWS's own tools'.
    let (code, v) = envol(&env, &["key", "list"]);
    assert_eq!(code, 1);
    assert!(v["hint"].as_str().unwrap().contains("aws kms"), "{v}");
}

#[test]
#[cfg_attr(envol_no_pykmip, ignore = "needs pykmip-server and openssl")]
fn on_a_kmip_server() {
    let d = dir("kmip");
    let server = pykmip::Server::start(&d.join("pykmip"));
    let (ca, cert, key) = server.client("client");
    let env = [
        ("ENVOL_KMS", "kmip".to_string()),
        ("ENVOL_KMIP_ADDRESS", server.address()),
        ("ENVOL_KMIP_CA", ca.display().to_string()),
        ("ENVOL_KMIP_CERT", cert.display().to_string()),
        ("ENVOL_KMIP_KEY", key.display().to_string()),
        ("ENVOL_PRINCIPAL", "hypervisor".into()),
    ];
    for k in ["disk-key", "disk-key-2"] {
        let v = ok(&env, &["key", "create", k]);
        assert!(v["unique_identifier"].is_string(), "{v}");
    }
    let v = ok(&env, &["key", "describe", "disk-key"]);
    assert_eq!(v["state"], "Active", "{v}");
    lifecycle(&env, &d, "disk-key", "disk-key-2");
    // Creating a name that exists, an unknown key, and what KMIP leaves to
    // the server's own tools.
    let (code, v) = envol(&env, &["key", "create", "disk-key"]);
    assert_eq!(
        (code, v["status"].as_str()),
        (1, Some("ENVOL_ERR_INVALID_ARGUMENT")),
        "{v}"
    );
    let (code, v) = envol(&env, &["key", "describe", "no-such-key"]);
    assert_eq!(
        (code, v["status"].as_str()),
        (1, Some("ENVOL_ERR_KEY_NOT_FOUND")),
        "{v}"
    );
    let (code, v) = envol(&env, &["key", "disable", "disk-key"]);
    assert_eq!(code, 1);
    assert!(
        v["hint"].as_str().unwrap().contains("server's own tools"),
        "{v}"
    );
    // A certificate from a CA the server does not trust.
    let (_, rogue_cert, rogue_key) = server.client("rogue");
    let mut rogue = env.to_vec();
    rogue[3].1 = rogue_cert.display().to_string();
    rogue[4].1 = rogue_key.display().to_string();
    let (code, v) = envol(
        &rogue,
        &["volume", "check", &d.join("disk.img").display().to_string()],
    );
    assert_eq!(
        (code, v["status"].as_str()),
        (1, Some("ENVOL_ERR_ACCESS_DENIED")),
        "{v}"
    );
    // Missing configuration says what to set.
    let (code, v) = envol(
        &[env[0].clone(), env[1].clone(), env[5].clone()],
        &["volume", "check", &d.join("disk.img").display().to_string()],
    );
    assert_eq!(code, 1);
    assert!(v["hint"].as_str().unwrap().contains("ENVOL_KMIP_CA"), "{v}");
}

include!("../../build/pykmip.rs");
