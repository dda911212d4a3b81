//! The nbdkit plugin served to software nobody here wrote: each test makes
//! an envol volume and a sealed key store, starts nbdkit with the plugin on
//! a unix socket (behind nbdkit's `blocksize` filter), and uses the export
//! through qemu-img, qemu-io or nbdcopy. What the volume file holds is
//! checked independently: no plaintext, and its data area decrypts as
//! dm-crypt's `aes-xts-plain64` with Python's `cryptography`.
//!
//! Needs nbdkit, nbdkit-plugin-dev, libnbd-bin (nbdcopy), qemu-utils and
//! python3-cryptography; without them these tests are compiled `#[ignore]`
//! with the reason (see `build/services.rs`), and under CI they must run.

#![cfg_attr(envol_no_nbd_tools, allow(dead_code, unused_imports))]
#![allow(clippy::cast_possible_truncation)] // test sizes fit a 64-bit host

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use envol::header::{self, CipherSuite, Header, Params, SLOT_SIZE};
use envol::kms::policy::Policy;
use envol::kms::{Entropy, Kms, LocalKms, OsEntropy, SystemClock};
use envol::volume::{FileDevice, Volume};

/// The hypervisor may use the key for volumes; the admin may manage it
/// but not use it.
const POLICY: &str = include_str!("../policy.json");

const MARKER: &[u8] = b"ENVOL-PLAINTEXT-MARKER";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace")
}

/// Builds the plugin once per test binary.
fn plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let ws = workspace();
        let out = Command::new(ws.join("integrations/nbdkit/build.sh"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .expect("run integrations/nbdkit/build.sh");
        assert!(
            out.status.success(),
            "plugin build failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ws.join("target/nbdkit/nbdkit-envol-plugin.so")
    })
}

/// A deterministic byte stream (xorshift), with MARKER planted in every
/// 64 KiB and some all-zero stretches.
fn plaintext(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for at in (100..len.saturating_sub(MARKER.len())).step_by(65536) {
        v[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    for at in (len / 3..len / 3 + len / 16).step_by(1) {
        v[at] = 0;
    }
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A volume file, its key store and root key, in a directory of its own.
struct Disk {
    dir: PathBuf,
    volume: PathBuf,
    store: PathBuf,
    root: [u8; 32],
    kms: LocalKms,
    params: Params,
    /// The plugin's key-service parameters (the local store by default).
    service: Vec<String>,
}

impl Disk {
    fn new(name: &str, sector_size: u32, size: u64) -> Disk {
        let dir = workspace()
            .join("target/nbdkit-tests")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut root = [0u8; 32];
        OsEntropy.fill(&mut root).unwrap();
        let root_key = dir.join("root.key");
        let hex: String = root.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&root_key, format!("{hex}\n")).unwrap();
        let mut kms = LocalKms::new(Box::new(OsEntropy), Box::new(SystemClock), None);
        kms.set_service_policy("operator", Policy::allow_all(&["operator"]))
            .unwrap();
        kms.create_key("operator", "disk-key", Policy::parse(POLICY).unwrap())
            .unwrap();
        let mut volume_id = [0u8; 16];
        OsEntropy.fill(&mut volume_id).unwrap();
        let params = Params {
            suite: CipherSuite::AesXts256Plain64,
            sector_size,
            data_offset: header::DEFAULT_DATA_OFFSET,
            volume_size: size,
            volume_id,
        };
        let volume = dir.join("disk.envol");
        let dev = FileDevice::create(&volume, params.data_offset + size).unwrap();
        let vol = Volume::create(dev, &mut kms, "hypervisor", "disk-key", params).unwrap();
        drop(vol.detach().map_err(|(_, e)| e).unwrap());
        let store = dir.join("kms.store");
        let service = vec![
            format!("store={}", store.display()),
            format!("root-key-file={}", root_key.display()),
        ];
        let mut d = Disk {
            service,
            store,
            dir,
            volume,
            root,
            kms,
            params,
        };
        d.reseal();
        d
    }

    fn reseal(&mut self) {
        std::fs::write(&self.store, self.kms.seal(&self.root).unwrap()).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The data key, as the hypervisor may unwrap it.
    fn data_key_hex(&mut self) -> String {
        let raw = std::fs::read(&self.volume).unwrap();
        let h = Header::parse(&raw[..SLOT_SIZE]).unwrap();
        let strings = h.context_strings();
        let dek = self
            .kms
            .decrypt_data_key("hypervisor", h.blob, &strings.context())
            .unwrap();
        dek.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Both header copies parse, and the volume opens.
    fn headers_intact(&self) {
        let raw = std::fs::read(&self.volume).unwrap();
        Header::parse(&raw[..SLOT_SIZE]).expect("header copy A");
        Header::parse(&raw[SLOT_SIZE..2 * SLOT_SIZE]).expect("header copy B");
        Volume::open(FileDevice::open(&self.volume).unwrap()).expect("volume opens");
    }

    /// The whole data area decrypted with the independent AES-XTS.
    fn decrypt_all(&mut self) -> Vec<u8> {
        let key = self.data_key_hex();
        let out_path = self.path("decrypted.img");
        let sectors = self.params.volume_size / u64::from(self.params.sector_size);
        let out = Command::new("python3")
            .arg(workspace().join("integrations/nbdkit/tests/xts_check.py"))
            .arg("decrypt")
            .arg(&self.volume)
            .arg(key)
            .arg(self.params.data_offset.to_string())
            .arg(self.params.sector_size.to_string())
            .arg(sectors.to_string())
            .arg(&out_path)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "independent XTS decrypt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(&out_path).unwrap()
    }

    /// Checks the data area against `plain` with an independent AES-XTS.
    fn decrypts_to(&mut self, plain: &Path) {
        let key = self.data_key_hex();
        let out = Command::new("python3")
            .arg(workspace().join("integrations/nbdkit/tests/xts_check.py"))
            .arg("compare")
            .arg(&self.volume)
            .arg(key)
            .arg(self.params.data_offset.to_string())
            .arg(self.params.sector_size.to_string())
            .arg(plain)
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        println!("{text}");
        assert!(out.status.success(), "independent XTS check: {text}");
    }
}

/// nbdkit serving a disk on a unix socket.
struct Server {
    child: Option<Child>,
    sock: PathBuf,
    log: PathBuf,
}

impl Server {
    fn start(d: &Disk, principal: &str) -> Server {
        Server::start_with(d, principal, &[], &[])
    }

    /// With more filters (after blocksize, nearer the plugin) and their
    /// parameters.
    fn start_with(d: &Disk, principal: &str, filters: &[&str], params: &[&str]) -> Server {
        let n = std::fs::read_dir(&d.dir).unwrap().count();
        let sock = d.path(&format!("nbd-{n}.sock"));
        let log = d.path(&format!("nbdkit-{n}.log"));
        let _ = std::fs::remove_file(&sock);
        let ss = d.params.sector_size.to_string();
        let child = Command::new("nbdkit")
            .args(["-f", "--exit-with-parent", "-U"])
            .arg(&sock)
            .arg("--filter=blocksize")
            .args(filters)
            .arg(plugin())
            .args(params)
            .arg(format!("volume={}", d.volume.display()))
            .arg(format!("principal={principal}"))
            .args(&d.service)
            .arg(format!("minblock={ss}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start nbdkit");
        let mut s = Server {
            child: Some(child),
            sock,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.sock.exists() {
            let c = s.child.as_mut().unwrap();
            if let Some(st) = c.try_wait().unwrap() {
                panic!("nbdkit exited ({st}) before serving:\n{}", s.log_text());
            }
            assert!(Instant::now() < deadline, "nbdkit did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn uri(&self) -> String {
        format!("nbd+unix:///?socket={}", self.sock.display())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as an operator stops it: clients are closed, the volume
    /// detached. Returns the log.
    fn stop(mut self) -> String {
        let mut c = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let st = c.wait().unwrap();
        let log = self.log_text();
        assert!(st.success(), "nbdkit exited with {st}:\n{log}");
        log
    }

    /// SIGKILL: nothing of nbdkit's or the plugin's runs afterwards.
    fn kill9(mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        let _ = c.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    println!(
        "--- {what}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(cmd: &mut Command, what: &str) -> String {
    let out = run(cmd, what);
    assert!(out.status.success(), "{what} failed ({})", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// qemu-io commands against the export; every pattern must verify.
fn qemu_io(s: &Server, cmds: &[String], what: &str) {
    let mut c = Command::new("qemu-io");
    c.args(["-f", "raw"]).arg(s.uri());
    for x in cmds {
        c.arg("-c").arg(x);
    }
    let text = ok(&mut c, what);
    for bad in ["Pattern verification failed", "failed:", "Error", "error"] {
        assert!(!text.contains(bad), "{what}: qemu-io said {bad:?}:\n{text}");
    }
}

fn write_file(path: &Path, data: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

#[test]
#[cfg_attr(
    envol_no_nbd_tools,
    ignore = "needs nbdkit, nbdkit-plugin-dev, libnbd-bin, qemu-utils, python3"
)]
fn qemu_img_convert_then_compare_after_reattach_in_a_new_nbdkit() {
    let size = 16 << 20;
    let mut d = Disk::new("qemu-img", 4096, size);
    let plain = d.path("plain.img");
    write_file(&plain, &plaintext(size as usize, 7));

    let s = Server::start(&d, "hypervisor");
    ok(
        Command::new("qemu-img")
            .args(["convert", "-n", "-f", "raw", "-O", "raw"])
            .arg(&plain)
            .arg(s.uri()),
        "qemu-img convert plain.img -> export",
    );
    s.stop();

    let s = Server::start(&d, "hypervisor");
    ok(
        Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "raw"])
            .arg(&plain)
            .arg(s.uri()),
        "qemu-img compare plain.img export (new nbdkit, attached again)",
    );
    s.stop();

    let raw = std::fs::read(&d.volume).unwrap();
    assert!(!contains(&raw, MARKER), "plaintext in the volume file");
    d.decrypts_to(&plain);
    d.headers_intact();
}

#[test]
#[cfg_attr(
    envol_no_nbd_tools,
    ignore = "needs nbdkit, nbdkit-plugin-dev, libnbd-bin, qemu-utils, python3"
)]
fn qemu_io_patterns_aligned_unaligned_and_async() {
    let mut d = Disk::new("qemu-io", 512, 8 << 20);
    let s = Server::start(&d, "hypervisor");
    let c = |x: &str| x.to_string();
    qemu_io(
        &s,
        &[
            c("write -P 0xab 0 64k"),
            c("read -P 0xab 0 64k"),
            // Smaller than a sector, across sector boundaries: the
            // blocksize filter's read-modify-write.
            c("write -P 0x11 1000 3000"),
            c("read -P 0x11 1000 3000"),
            c("read -P 0xab 0 1000"),
            c("read -P 0xab 4000 61536"),
            c("write -P 0x3c 65535 2"),
            c("read -P 0x3c 65535 2"),
            c("aio_write -P 0x22 1M 128k"),
            c("aio_write -P 0x23 2M 256k"),
            c("aio_write -P 0x24 3M 4k"),
            c("aio_flush"),
            c("read -P 0x22 1M 128k"),
            c("read -P 0x23 2M 256k"),
            c("read -P 0x24 3M 4k"),
            c("write -z 2M 64k"),
            c("read -P 0 2M 64k"),
            c("read -P 0x23 2162688 196608"),
            c("flush"),
        ],
        "qemu-io patterns",
    );
    s.stop();
    // Once more in a new server: what was flushed is there.
    let s = Server::start(&d, "hypervisor");
    qemu_io(
        &s,
        &[
            c("read -P 0x11 1000 3000"),
            c("read -P 0x22 1M 128k"),
            c("read -P 0 2M 64k"),
        ],
        "qemu-io after re-attach",
    );
    s.stop();
    let raw = std::fs::read(&d.volume).unwrap();
    let data = &raw[d.params.data_offset as usize..];
    assert!(
        !data.windows(64).any(|w| w.iter().all(|&b| b == 0x22)),
        "a written pattern is visible on disk"
    );
    // The zeroed range is ciphertext of zeros, not zeros (no hole, no
    // leak of which sectors were zeroed).
    let z = &data[2 << 20..(2 << 20) + 65536];
    assert!(
        !z.iter().all(|&b| b == 0),
        "write-zeroes left zeros on disk"
    );
    d.headers_intact();
    let _ = d.data_key_hex();
}

#[test]
#[cfg_attr(
    envol_no_nbd_tools,
    ignore = "needs nbdkit, nbdkit-plugin-dev, libnbd-bin, qemu-utils, python3"
)]
fn nbdcopy_with_four_connections_and_requests_in_flight() {
    let size = 32 << 20;
    let mut d = Disk::new("nbdcopy", 4096, size);
    let plain = d.path("plain.img");
    write_file(&plain, &plaintext(size as usize, 11));
    let s = Server::start(&d, "hypervisor");
    ok(
        Command::new("nbdcopy")
            .args(["--connections=4", "--requests=32", "--flush"])
            .arg(&plain)
            .arg(s.uri()),
        "nbdcopy plain.img -> export",
    );
    let back = d.path("back.img");
    std::fs::File::create(&back).unwrap().set_len(size).unwrap();
    ok(
        Command::new("nbdcopy")
            .args(["--connections=4", "--requests=32"])
            .arg(s.uri())
            .arg(&back),
        "nbdcopy export -> back.img",
    );
    s.stop();
    assert!(
        std::fs::read(&back).unwrap() == std::fs::read(&plain).unwrap(),
        "nbdcopy round trip differs"
    );
    d.decrypts_to(&plain);
}

#[test]
#[cfg_attr(
    envol_no_nbd_tools,
    ignore = "needs nbdkit, nbdkit-plugin-dev, libnbd-bin, qemu-utils, python3"
)]
fn kill_9_in_a_write_storm_loses_no_flushed_write() {
    let size: u64 = 16 << 20;
    let mut d = Disk::new("kill9", 4096, size);
    let first = d.path("first.img");
    let second = d.path("second.img");
    write_file(&first, &plaintext(size as usize, 13));
    write_file(&second, &plaintext(size as usize, 17));
    // Every sector written and acknowledged by a flush.
    let s = Server::start(&d, "hypervisor");
    ok(
        Command::new("nbdcopy")
            .args(["--connections=4", "--requests=32", "--flush"])
            .arg(&first)
            .arg(s.uri()),
        "acknowledged: nbdcopy --flush first.img",
    );
    s.stop();
    // The storm: the second image in 4 KiB requests, many in flight on four
    // connections, each request held 5 ms (nbdkit's delay filter) so that
    // SIGKILL lands in the middle of it.
    let s = Server::start_with(&d, "hypervisor", &["--filter=delay"], &["delay-write=5ms"]);
    let before = std::fs::read(&d.volume).unwrap();
    let mut copy = Command::new("nbdcopy")
        .args(["--connections=4", "--requests=64", "--request-size=4096"])
        .arg(&second)
        .arg(s.uri())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = std::fs::read(&d.volume).unwrap();
        let changed = now
            .chunks(4096)
            .zip(before.chunks(4096))
            .filter(|(a, b)| a != b)
            .count();
        if changed >= 64 {
            break;
        }
        assert!(Instant::now() < deadline, "the storm did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    s.kill9();
    let _ = copy.wait();

    // The headers are whole and the volume attaches in a new nbdkit; what
    // it serves is what the independent decryption of the file says.
    d.headers_intact();
    let plain = d.decrypt_all();
    let s = Server::start(&d, "hypervisor");
    let back = d.path("back.img");
    std::fs::File::create(&back).unwrap().set_len(size).unwrap();
    ok(
        Command::new("nbdcopy").arg(s.uri()).arg(&back),
        "nbdcopy export -> back.img after the crash",
    );
    s.stop();
    assert!(
        std::fs::read(&back).unwrap() == plain,
        "export and file disagree"
    );

    // Every sector is whole: the flushed first image, or the storm's
    // second; never torn, never garbled. Sectors the storm had not reached
    // kept their flushed data.
    let a = std::fs::read(&first).unwrap();
    let b = std::fs::read(&second).unwrap();
    let ss = d.params.sector_size as usize;
    let (mut kept, mut stormed) = (0, 0);
    for n in 0..size as usize / ss {
        let at = n * ss..(n + 1) * ss;
        let is_first = plain[at.clone()] == a[at.clone()];
        let is_second = plain[at.clone()] == b[at];
        assert!(
            is_first || is_second,
            "sector {n} is neither image: torn or garbled"
        );
        kept += usize::from(is_first);
        stormed += usize::from(is_second);
    }
    println!("after kill -9 mid-storm: {kept} sectors as flushed, {stormed} from the storm");
    assert!(stormed > 0 && kept > 0, "the kill did not land mid-storm");
}

#[test]
#[cfg_attr(
    envol_no_nbd_tools,
    ignore = "needs nbdkit, nbdkit-plugin-dev, libnbd-bin, qemu-utils, python3"
)]
fn refused_attach_fails_the_export_with_a_reason_and_writes_nothing() {
    let mut d = Disk::new("refused", 4096, 4 << 20);
    let before = std::fs::read(&d.volume).unwrap();
    for (principal, setup, want) in [
        ("mallory", false, "ENVOL_ERR_ACCESS_DENIED"),
        ("hypervisor", true, "ENVOL_ERR_KEY_DISABLED"),
    ] {
        if setup {
            d.kms.disable_key("admin", "disk-key").unwrap();
            d.reseal();
        }
        let s = Server::start(&d, principal);
        let out = run(
            Command::new("qemu-io")
                .args(["-f", "raw"])
                .arg(s.uri())
                .args(["-c", "write -P 0x77 0 4k"]),
            &format!("qemu-io as {principal}"),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() || text.contains("failed") || text.contains("rror"),
            "the export opened for {principal}"
        );
        let log = s.stop();
        assert!(
            log.contains("may not attach") && log.contains(want),
            "nbdkit's log does not say why ({want}):\n{log}"
        );
        assert!(
            std::fs::read(&d.volume).unwrap() == before,
            "the volume changed"
        );
    }
}

/// The plugin on a KMIP server (PyKMIP, started here): qemu-img writes
/// through an export whose data key the server unwraps, the volume is read
/// back in Rust through `KmipKms`, and once the master key is revoked the
/// plugin refuses the export with the server's answer.
#[test]
#[cfg_attr(
    any(envol_no_nbd_tools, envol_no_pykmip),
    ignore = "needs nbdkit, nbdkit-plugin-dev, libnbd-bin, qemu-utils, python3, pykmip-server, openssl"
)]
fn served_with_the_master_key_on_a_kmip_server() {
    use envol_kms::kmip::{KmipConfig, KmipKms};
    let size = 4 << 20;
    let mut d = Disk::new("kmip", 4096, size);
    let kmip_server = pykmip::Server::start(&d.path("pykmip"));
    let (ca, cert, key) = kmip_server.client("client");
    let mut kmip = KmipKms::new(KmipConfig::new(kmip_server.address(), &ca, &cert, &key)).unwrap();
    kmip.create_key("disk-key").unwrap();
    std::fs::remove_file(&d.volume).unwrap();
    let dev = FileDevice::create(&d.volume, d.params.data_offset + size).unwrap();
    let vol = Volume::create(dev, &mut kmip, "hypervisor", "disk-key", d.params).unwrap();
    drop(vol.detach().map_err(|(_, e)| e).unwrap());
    d.service = vec![
        "kms=kmip".into(),
        format!("kmip-address={}", kmip_server.address()),
        format!("kmip-ca={}", ca.display()),
        format!("kmip-cert={}", cert.display()),
        format!("kmip-key={}", key.display()),
    ];

    let plain = d.path("plain.img");
    let data = plaintext(size as usize, 11);
    write_file(&plain, &data);
    let s = Server::start(&d, "hypervisor");
    ok(
        Command::new("qemu-img")
            .args(["convert", "-n", "-f", "raw", "-O", "raw"])
            .arg(&plain)
            .arg(s.uri()),
        "qemu-img convert plain.img -> export on KMIP",
    );
    s.stop();
    let raw = std::fs::read(&d.volume).unwrap();
    assert!(!contains(&raw, MARKER), "plaintext in the volume file");
    let vol = Volume::open(FileDevice::open(&d.volume).unwrap())
        .map_err(|(_, e)| e)
        .unwrap()
        .attach(&mut kmip, "hypervisor")
        .map_err(|(_, e)| e)
        .unwrap();
    let mut back = vec![0u8; data.len()];
    vol.read_sectors(0, &mut back).unwrap();
    assert!(
        back == data,
        "the volume does not read back what qemu-img wrote"
    );
    drop(vol);

    kmip.revoke_key("disk-key", false).unwrap();
    let before = std::fs::read(&d.volume).unwrap();
    let s = Server::start(&d, "hypervisor");
    let out = run(
        Command::new("qemu-io")
            .args(["-f", "raw"])
            .arg(s.uri())
            .args(["-c", "write -P 0x77 0 4k"]),
        "qemu-io on a revoked key",
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() || text.contains("failed") || text.contains("rror"),
        "the export opened under a revoked key"
    );
    let log = s.stop();
    assert!(
        log.contains("may not attach") && log.contains("ENVOL_ERR_KEY_DISABLED"),
        "nbdkit's log does not say why:\n{log}"
    );
    assert!(
        std::fs::read(&d.volume).unwrap() == before,
        "the volume changed"
    );
}

include!("../../../build/pykmip.rs");
