//! The real `envol` binary, end to end, on temporary files: every
//! subcommand with its `--json` output parsed, the refusals with their exit
//! status and message, nothing changed by a command that failed, two
//! processes racing on one store, and crashes in the middle of a store
//! update and of an import.

#![allow(clippy::cast_possible_truncation)] // test sizes

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const POLICY: &str = r#"{"Statement": [
  {"Effect": "Allow", "Principal": {"Envol": "hypervisor"},
   "Action": ["kms:GenerateDataKey*", "kms:Decrypt", "kms:ReEncrypt*", "kms:RetireVolume"],
   "Condition": {"StringLike": {"kms:EncryptionContext:volume": "vol-*"}}},
  {"Effect": "Allow", "Principal": {"Envol": "admin"}, "Action": "kms:*"},
  {"Effect": "Deny", "Principal": {"Envol": "admin"},
   "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]}]}"#;

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key: String = (0..32).map(|i| format!("{:02x}", i * 7 + 3)).collect();
        std::fs::write(dir.join("root.key"), format!("{key}\n")).unwrap();
        std::fs::write(dir.join("policy.json"), POLICY).unwrap();
        Env { dir }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn cmd(&self, principal: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_envol"));
        for (k, _) in std::env::vars() {
            if k.starts_with("ENVOL_") {
                c.env_remove(k);
            }
        }
        c.env("ENVOL_STORE", self.p("kms.store"))
            .env("ENVOL_ROOT_KEY_FILE", self.p("root.key"))
            .env("ENVOL_PRINCIPAL", principal)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs and returns (exit code, stdout, stderr).
    fn run(&self, principal: &str, args: &[&str]) -> (i32, String, String) {
        let o: Output = self.cmd(principal, args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Runs with --json; must succeed; the object.
    fn ok(&self, principal: &str, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let (code, out, err) = self.run(principal, &a);
        assert_eq!(code, 0, "envol {args:?}: {out}{err}");
        let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["ok"], true);
        v
    }

    /// Runs with --json; must fail with exit 1 and `status`; the object.
    fn refused(&self, principal: &str, args: &[&str], status: &str) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let (code, out, err) = self.run(principal, &a);
        assert_eq!(code, 1, "envol {args:?} should fail: {out}{err}");
        let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["ok"], false);
        assert_eq!(v["status"], status, "{v}");
        v
    }

    fn s(&self, name: &str) -> String {
        self.p(name).display().to_string()
    }

    fn setup(&self) {
        self.ok("admin", &["store", "init", "--admin", "admin"]);
        let pol = self.s("policy.json");
        self.ok("admin", &["key", "create", "disk-key", "--policy", &pol]);
        self.ok("admin", &["key", "create", "disk-key-2", "--policy", &pol]);
    }
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn keys_grants_and_audit() {
    let e = Env::new("keys");
    e.setup();
    let list = e.ok("admin", &["key", "list"]);
    assert_eq!(list["keys"], serde_json::json!(["disk-key", "disk-key-2"]));
    let d = e.ok("admin", &["key", "describe", "disk-key"]);
    assert_eq!(d["state"], "Enabled");
    assert_eq!(d["backing_versions"], 1);
    let pol = e.ok("admin", &["key", "get-policy", "disk-key"]);
    assert_eq!(pol["policy"]["Statement"].as_array().unwrap().len(), 3);

    // A bad policy is refused with where it is wrong.
    std::fs::write(e.p("bad.json"), r#"{"Statement":[{"Effect":"Maybe"}]}"#).unwrap();
    let bad = e.refused(
        "admin",
        &["key", "put-policy", "disk-key", &e.s("bad.json")],
        "ENVOL_ERR_POLICY",
    );
    assert!(
        bad["message"].as_str().unwrap().contains("Statement[0]"),
        "{bad}"
    );

    e.ok("admin", &["key", "rotate", "disk-key"]);
    assert_eq!(
        e.ok("admin", &["key", "describe", "disk-key"])["backing_versions"],
        2
    );
    e.ok(
        "admin",
        &["key", "enable-rotation", "disk-key", "--days", "90"],
    );
    assert_eq!(
        e.ok("admin", &["key", "describe", "disk-key"])["rotation_days"],
        90
    );
    e.ok("admin", &["key", "disable-rotation", "disk-key"]);
    e.ok("admin", &["key", "disable", "disk-key-2"]);
    assert_eq!(
        e.ok("admin", &["key", "describe", "disk-key-2"])["state"],
        "Disabled"
    );
    e.ok("admin", &["key", "enable", "disk-key-2"]);
    let del = e.ok(
        "admin",
        &["key", "schedule-deletion", "disk-key-2", "--days", "7"],
    );
    assert!(del["delete_at"].as_u64().unwrap() > 0);
    assert_eq!(
        e.ok("admin", &["key", "describe", "disk-key-2"])["state"],
        "PendingDeletion"
    );
    e.ok("admin", &["key", "cancel-deletion", "disk-key-2"]);

    // Grants.
    let g = e.ok(
        "admin",
        &[
            "grant",
            "create",
            "disk-key",
            "--grantee",
            "backup",
            "--operation",
            "kms:Decrypt",
            "--context-subset",
            "volume=vol-1",
        ],
    );
    let id = g["grant_id"].as_str().unwrap().to_string();
    let gl = e.ok("admin", &["grant", "list", "disk-key"]);
    assert_eq!(gl["grants"][0]["grant_id"], id.as_str());
    assert_eq!(
        gl["grants"][0]["operations"],
        serde_json::json!(["kms:Decrypt"])
    );
    e.refused(
        "admin",
        &[
            "grant",
            "create",
            "disk-key",
            "--grantee",
            "x",
            "--operation",
            "kms:PutKeyPolicy",
        ],
        "ENVOL_ERR_INVALID_ARGUMENT",
    );
    e.ok("admin", &["grant", "revoke", "disk-key", &id]);
    assert_eq!(
        e.ok("admin", &["grant", "list", "disk-key"])["grants"],
        serde_json::json!([])
    );

    // Least privilege: the hypervisor may not manage the key.
    e.refused(
        "hypervisor",
        &["key", "disable", "disk-key"],
        "ENVOL_ERR_ACCESS_DENIED",
    );
    e.refused("mallory", &["key", "list"], "ENVOL_ERR_ACCESS_DENIED");

    // Audit: everything above, refusals included, one verifiable chain.
    let head = e.ok("admin", &["audit", "head"]);
    let head = head["head"].as_str().unwrap().to_string();
    let v = e.ok("admin", &["audit", "verify", "--head", &head]);
    assert!(v["events"].as_u64().unwrap() >= 20);
    let refused = e.ok("admin", &["audit", "show", "--outcome", "refused"]);
    let evs = refused["events"].as_array().unwrap();
    assert!(
        evs.iter()
            .any(|x| x["principal"] == "mallory" && x["action"] == "kms:ListKeys"),
        "{refused}"
    );
    assert!(evs.iter().all(|x| x["outcome"] != "ENVOL_OK"));
    let by = e.ok("admin", &["audit", "show", "--by", "hypervisor"]);
    assert!(
        by["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["principal"] == "hypervisor")
    );

    // A cut trail no longer reaches the exported head.
    let trail = std::fs::read_to_string(e.p("kms.store.audit")).unwrap();
    let cut: Vec<&str> = trail.lines().collect();
    std::fs::write(
        e.p("kms.store.audit"),
        cut[..cut.len() - 1].join("\n") + "\n",
    )
    .unwrap();
    e.refused(
        "admin",
        &["audit", "verify", "--head", &head],
        "ENVOL_ERR_AUDIT_FAILED",
    );
}

#[test]
fn volume_lifecycle_and_refusals() {
    let e = Env::new("volumes");
    e.setup();
    let disk = e.s("disk.img");
    let c = e.ok(
        "hypervisor",
        &[
            "volume", "create", &disk, "--size", "8M", "--key", "disk-key", "--fill", "zero",
        ],
    );
    assert_eq!(c["params"]["volume_size"], 8 << 20);
    assert_eq!(c["params"]["sector_size"], 4096);
    // Creating again is refused, and changes nothing.
    let before = std::fs::read(&disk).unwrap();
    e.refused(
        "hypervisor",
        &[
            "volume", "create", &disk, "--size", "8M", "--key", "disk-key",
        ],
        "ENVOL_ERR_VOLUME_EXISTS",
    );
    assert!(std::fs::read(&disk).unwrap() == before);

    let i = e.ok("hypervisor", &["volume", "inspect", &disk]);
    assert_eq!(i["copies"][0]["ok"], true);
    assert_eq!(i["copies"][1]["ok"], true);
    assert_eq!(i["mac"]["verified"], true);
    assert_eq!(i["copies"][0]["key_id"], "disk-key");

    // Import and export through the pool.
    let plain = data(5 << 20, 9);
    std::fs::write(e.p("plain.img"), &plain).unwrap();
    e.ok(
        "hypervisor",
        &["volume", "import", &e.s("plain.img"), &disk],
    );
    e.ok("hypervisor", &["volume", "export", &disk, &e.s("back.img")]);
    let back = std::fs::read(e.p("back.img")).unwrap();
    assert_eq!(back.len(), 8 << 20);
    assert!(
        back[..plain.len()] == plain[..],
        "export differs from import"
    );
    assert!(back[plain.len()..].iter().all(|&b| b == 0), "--fill zero");
    assert!(!e.p("back.img.partial").exists());

    // dm-crypt: the command and the key it needs.
    let dm = e.ok("hypervisor", &["volume", "dm-crypt", &disk]);
    assert_eq!(dm["key_bits"], 512);
    assert_eq!(dm["offset_sectors"], 2048);
    assert!(dm["command"].as_str().unwrap().contains("--key-size 512"));
    let key = e
        .cmd("hypervisor", &["volume", "key", &disk])
        .output()
        .unwrap();
    assert!(key.status.success());
    assert_eq!(key.stdout.len(), 64);

    // Refusals, each changing nothing on the volume.
    let before = std::fs::read(&disk).unwrap();
    e.refused(
        "mallory",
        &["volume", "check", &disk],
        "ENVOL_ERR_ACCESS_DENIED",
    );
    e.refused(
        "admin",
        &["volume", "key", &disk],
        "ENVOL_ERR_ACCESS_DENIED",
    );
    e.ok("admin", &["key", "disable", "disk-key"]);
    e.refused(
        "hypervisor",
        &["volume", "check", &disk],
        "ENVOL_ERR_KEY_DISABLED",
    );
    e.ok("admin", &["key", "enable", "disk-key"]);
    e.refused(
        "admin",
        &["key", "schedule-deletion", "disk-key"],
        "ENVOL_ERR_KEY_IN_USE",
    );
    assert!(std::fs::read(&disk).unwrap() == before);
    e.ok("hypervisor", &["volume", "check", &disk]);

    // Rewrap to the second key; the data stays.
    e.ok(
        "hypervisor",
        &["volume", "rewrap", &disk, "--key", "disk-key-2"],
    );
    assert_eq!(
        e.ok("hypervisor", &["volume", "inspect", &disk])["copies"][0]["key_id"],
        "disk-key-2"
    );
    e.ok(
        "hypervisor",
        &["volume", "export", &disk, &e.s("back2.img")],
    );
    assert!(std::fs::read(e.p("back2.img")).unwrap() == back);

    // A damaged copy is shown as such; the volume still attaches.
    let mut raw = std::fs::read(&disk).unwrap();
    raw[4096 + 100] ^= 0xff;
    std::fs::write(&disk, &raw).unwrap();
    let i = e.ok("hypervisor", &["volume", "inspect", &disk]);
    assert_eq!(i["copies"][1]["ok"], false);
    assert_eq!(i["copies"][1]["status"], "ENVOL_ERR_HEADER_CORRUPT");
    e.ok("hypervisor", &["volume", "check", &disk]);

    // Pending deletion (forced past the in-use guard) refuses attach.
    e.ok(
        "admin",
        &["key", "schedule-deletion", "disk-key-2", "--force"],
    );
    e.refused(
        "hypervisor",
        &["volume", "check", &disk],
        "ENVOL_ERR_KEY_PENDING_DELETION",
    );
    e.ok("admin", &["key", "cancel-deletion", "disk-key-2"]);
    e.ok("admin", &["key", "enable", "disk-key-2"]);

    // Retire: never attaches again.
    e.ok("hypervisor", &["volume", "retire", &disk]);
    e.refused(
        "hypervisor",
        &["volume", "check", &disk],
        "ENVOL_ERR_VOLUME_RETIRED",
    );

    // Not a volume; bad sizes; a usage error is exit status 2.
    std::fs::write(e.p("junk.img"), vec![0x11u8; 1 << 20]).unwrap();
    e.refused(
        "hypervisor",
        &["volume", "inspect", &e.s("junk.img")],
        "ENVOL_ERR_HEADER_BAD_MAGIC",
    );
    for bad in ["10Q", "0", "1000"] {
        e.refused(
            "hypervisor",
            &[
                "volume",
                "create",
                &e.s("new.img"),
                "--size",
                bad,
                "--key",
                "disk-key",
            ],
            if bad == "1000" {
                "ENVOL_ERR_VOLUME_PARAMS"
            } else {
                "ENVOL_ERR_INVALID_ARGUMENT"
            },
        );
        assert!(!e.p("new.img").exists(), "a failed create left a file");
    }
    let (code, _, err) = e.run("hypervisor", &["volume", "create"]);
    assert_eq!(code, 2, "{err}");

    // AES-128 volumes get a 256-bit key size.
    let small = e.s("small.img");
    e.ok(
        "hypervisor",
        &[
            "volume",
            "create",
            &small,
            "--size",
            "1M",
            "--key",
            "disk-key",
            "--cipher",
            "aes-xts-128",
            "--sector-size",
            "512",
        ],
    );
    let dm = e.ok("hypervisor", &["volume", "dm-crypt", &small]);
    assert_eq!(dm["key_bits"], 256);
    assert!(
        dm["command"]
            .as_str()
            .unwrap()
            .contains("--sector-size 512")
    );
    let key = e
        .cmd("hypervisor", &["volume", "key", &small])
        .output()
        .unwrap();
    assert_eq!(key.stdout.len(), 32);

    e.ok("admin", &["audit", "verify"]);
}

#[test]
fn two_processes_racing_on_one_store_lose_nothing() {
    let e = Env::new("race");
    e.setup();
    let pol = e.s("policy.json");
    let children: Vec<_> = (0..8)
        .map(|i| {
            e.cmd(
                "admin",
                &["key", "create", &format!("k{i}"), "--policy", &pol],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let keys = e.ok("admin", &["key", "list"]);
    let keys = keys["keys"].as_array().unwrap();
    for i in 0..8 {
        assert!(
            keys.iter().any(|k| k == &format!("k{i}")),
            "k{i} lost: {keys:?}"
        );
    }
    e.ok("admin", &["audit", "verify"]);
}

#[test]
fn a_crash_in_a_store_update_leaves_the_old_store_and_a_whole_trail() {
    let e = Env::new("crash");
    e.setup();
    let pol = e.s("policy.json");
    // Dies after the new store is written and fsynced, before the rename.
    let o = e
        .cmd("admin", &["key", "create", "crashed", "--policy", &pol])
        .env("ENVOL_TEST_CRASH_AT", "store-written")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let keys = e.ok("admin", &["key", "list"]);
    assert_eq!(keys["keys"], serde_json::json!(["disk-key", "disk-key-2"]));
    // The crashed command's audit event stays in the one chain.
    e.ok("admin", &["audit", "verify"]);
    let shown = e.ok("admin", &["audit", "show", "--key", "crashed"]);
    assert_eq!(shown["events"].as_array().unwrap().len(), 1);

    // kill -9 at arbitrary moments of many updates: the store always opens
    // and the trail always verifies.
    for i in 0..12u64 {
        let mut c = e
            .cmd(
                "admin",
                &["key", "create", &format!("kill{i}"), "--policy", &pol],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(500 * i));
        let _ = c.kill();
        let _ = c.wait();
        e.ok("admin", &["key", "list"]);
    }
    e.ok("admin", &["audit", "verify"]);
    e.ok("admin", &["key", "create", "after", "--policy", &pol]);
    e.ok("admin", &["audit", "verify"]);
}

#[test]
fn a_crash_in_an_import_is_undone_by_running_it_again() {
    let e = Env::new("import");
    e.setup();
    let disk = e.s("disk.img");
    e.ok(
        "hypervisor",
        &[
            "volume", "create", &disk, "--size", "16M", "--key", "disk-key",
        ],
    );
    let plain = data(16 << 20, 5);
    std::fs::write(e.p("plain.img"), &plain).unwrap();
    let o = e
        .cmd(
            "hypervisor",
            &["volume", "import", &e.s("plain.img"), &disk],
        )
        .env("ENVOL_TEST_CRASH_AT", "import-half")
        .output()
        .unwrap();
    assert!(!o.status.success());
    // The headers are whole; the import restarts and completes.
    let i = e.ok("hypervisor", &["volume", "inspect", &disk]);
    assert_eq!(i["mac"]["verified"], true);
    e.ok(
        "hypervisor",
        &["volume", "import", &e.s("plain.img"), &disk],
    );
    e.ok("hypervisor", &["volume", "export", &disk, &e.s("back.img")]);
    assert!(std::fs::read(e.p("back.img")).unwrap() == plain);
    e.ok("admin", &["audit", "verify"]);
}
