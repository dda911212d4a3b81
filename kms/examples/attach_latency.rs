//! Latency of attaching a volume through each key service, side by side in
//! one run: the reference `LocalKms` in process, AWS KMS emulated by moto on
//! loopback, a SoftHSM2 token, PyKMIP's KMIP server on loopback TLS, and
//! each behind the data-key cache.
//!
//!   cargo run --release -p envol-kms --example attach_latency [iterations]
//!
//! moto: `ENVOL_MOTO_ENDPOINT` (e.g. `http://127.0.0.1:5000`), else a
//! `moto_server` is started on a free port for the run. SoftHSM2: a token is
//! initialised in a temporary directory with `softhsm2-util`. KMIP:
//! `pykmip-server` (`ENVOL_PYKMIP_SERVER`, else on `PATH`) is started with
//! certificates made by `openssl`, as the tests do. An attach is
//! header read + one unwrap at the service + MAC check + engine set-up; the
//! table gives the median and 90th percentile of `iterations` attaches
//! (default 300) and the median as a ratio to `LocalKms`'s.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envol::kms::policy::Policy;
use envol::kms::{Kms, LocalKms, OsEntropy, SystemClock};
use envol::volume::{MemDevice, Volume};
use envol_kms::aws::{AwsConfig, AwsCredentials, AwsKms};
use envol_kms::cache::{CacheLimits, CachingKms};
use envol_kms::kmip::{KmipConfig, KmipKms};
use envol_kms::pkcs11::{AuthPin, Pkcs11Config, Pkcs11Kms};
use serde_json::json;
use zeroize::Zeroizing;

const POLICY: &str =
    r#"{"Statement":[{"Effect":"Allow","Principal":{"Envol":"hypervisor"},"Action":"kms:*"}]}"#;

fn params() -> envol::header::Params {
    envol::header::Params {
        suite: envol::header::CipherSuite::AesXts256Plain64,
        sector_size: 4096,
        data_offset: envol::header::DEFAULT_DATA_OFFSET,
        volume_size: 16 * 4096,
        volume_id: [7; 16],
    }
}

/// Median and 90th percentile of `n` attach + detach cycles, in µs.
fn measure<K: Kms>(kms: &mut K, key: &str, n: usize) -> (f64, f64) {
    let dev = MemDevice::new(
        usize::try_from(envol::header::DEFAULT_DATA_OFFSET).unwrap_or(1 << 20) + 16 * 4096,
    );
    let mut vol = Volume::create(dev, kms, "hypervisor", key, params())
        .expect("create")
        .detach()
        .map_err(|(_, e)| e)
        .unwrap();
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let attached = vol.attach(kms, "hypervisor").expect("attach");
        t.push(start.elapsed());
        vol = attached.detach().map_err(|(_, e)| e).unwrap();
    }
    t.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(t[n / 2]), us(t[n * 9 / 10]))
}

fn moto_endpoint() -> String {
    if let Ok(e) = std::env::var("ENVOL_MOTO_ENDPOINT") {
        return e;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let script = format!(
        "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; trap 'kill $m 2>/dev/null' EXIT; \
         while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done",
        pid = std::process::id()
    );
    // The watchdog shell stops moto once this process is gone, and then
    // exits itself: nothing here waits for it.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("start moto_server (pip install 'moto[server]')");
    for _ in 0..150 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return format!("http://127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("moto_server did not start");
}

fn softhsm_token() -> Pkcs11Config {
    let dir = std::env::temp_dir().join(format!("envol-latency-{}", std::process::id()));
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token dir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("softhsm2.conf");
    // SAFETY: set before any thread is started and before the module is
    // loaded (it reads the variable when it initialises).
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let ok = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "latency"])
        .args(["--so-pin", "12345678", "--pin", "1234"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "softhsm2-util --init-token failed (apt-get install softhsm2)"
    );
    Pkcs11Config::new("latency", AuthPin::from("1234"))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300)
        .max(10);
    let cache = CacheLimits::default();
    let mut rows: Vec<(&str, (f64, f64))> = Vec::new();

    let hsm = softhsm_token();
    let mut local = LocalKms::new(Box::new(OsEntropy), Box::new(SystemClock), None);
    local
        .set_service_policy("hypervisor", Policy::allow_all(&["hypervisor"]))
        .expect("service policy");
    local
        .create_key("hypervisor", "k", Policy::parse(POLICY).expect("policy"))
        .expect("create key");
    rows.push(("LocalKms (in process)", measure(&mut local, "k", n)));

    let endpoint = moto_endpoint();
    let mut aws = AwsKms::new(AwsConfig::new(
        endpoint,
        "us-east-1",
        AwsCredentials {
            access_key_id: "testing".into(),
            secret_access_key: Zeroizing::new("testing".into()),
            session_token: None,
        },
    ))
    .expect("aws config");
    let key = aws
        .call("CreateKey", &json!({"Description": "latency"}))
        .expect("CreateKey");
    let key = key["KeyMetadata"]["KeyId"]
        .as_str()
        .expect("key id")
        .to_string();
    rows.push(("AWS KMS (moto, loopback HTTP)", measure(&mut aws, &key, n)));
    let mut aws = CachingKms::new(aws, cache).expect("cache");
    rows.push(("AWS KMS + cache", measure(&mut aws, &key, n)));

    let mut p11 = Pkcs11Kms::open(hsm).expect("open token");
    p11.create_key("k").expect("create key");
    rows.push(("PKCS#11 (SoftHSM2)", measure(&mut p11, "k", n)));
    let mut p11 = CachingKms::new(p11, cache).expect("cache");
    rows.push(("PKCS#11 + cache", measure(&mut p11, "k", n)));

    let dir = std::env::temp_dir().join(format!("envol-latency-kmip-{}", std::process::id()));
    let server = pykmip::Server::start(&dir);
    let (ca, cert, key) = server.client("client");
    let mut kmip = KmipKms::new(KmipConfig::new(server.address(), ca, cert, key)).expect("kmip");
    kmip.create_key("k").expect("create key");
    rows.push(("KMIP (PyKMIP, loopback TLS)", measure(&mut kmip, "k", n)));
    let mut kmip = CachingKms::new(kmip, cache).expect("cache");
    rows.push(("KMIP + cache", measure(&mut kmip, "k", n)));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);

    let base = rows[0].1.0;
    println!("attach latency, {n} attaches each (median, p90; ratio = median / LocalKms median)\n");
    println!("| key service | median µs | p90 µs | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, (med, p90)) in &rows {
        println!("| {name} | {med:.1} | {p90:.1} | {:.2} |", med / base);
    }
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("envol-latency-{}", std::process::id())),
    );
}

include!("../../build/pykmip.rs");
