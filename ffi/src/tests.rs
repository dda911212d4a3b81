//! Rust-side checks of the ABI: the committed header is what cbindgen makes
//! of the sources today and compiles as strict C99 (hosted and freestanding),
//! the C test programs and the C example pass (plain, sanitized, and the
//! example under valgrind), and the status mappings are complete.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::cast_possible_truncation)] // test patterns

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate_header() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen runs")
        .write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

#[test]
fn header_is_fresh() {
    let path = crate_dir().join("include/envol.h");
    let fresh = generate_header();
    if std::env::var_os("ENVOL_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write header");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "ffi/include/envol.h is stale: run `ENVOL_BLESS=1 cargo test -p envol-ffi header_is_fresh`"
    );
}

/// The workspace root (the parent of `ffi/`).
fn workspace_dir() -> PathBuf {
    crate_dir()
        .parent()
        .expect("ffi/ has a parent")
        .to_path_buf()
}

/// A command line from an environment variable split on whitespace, e.g.
/// `CC="ccache gcc"` or `ENVOL_CTEST_RUNNER="qemu-aarch64 -cpu max"`.
fn command_from_env(var: &str, default: &str) -> Command {
    let line = std::env::var(var).unwrap_or_default();
    let mut words = line.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap_or(default));
    cmd.args(words);
    cmd
}

/// Runs `cmd` to completion; panics with everything it printed unless it
/// exits with status 0.
fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    out
}

/// The C test programs in `ffi/tests/`, by file stem.
const C_TESTS: [&str; 4] = ["xts_test", "kms_test", "volume_test", "thread_test"];

/// The strict flags every C program and the header are compiled with.
const C_FLAGS: [&str; 5] = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];

/// Compiles `ffi/tests/<name>.c` against `lib` into `exe`.
fn compile_c_test(name: &str, lib: &Path, exe: &Path, extra: &[&str], what: &str) {
    let src = crate_dir().join("tests").join(format!("{name}.c"));
    compile_c(&src, lib, exe, extra, what);
}

/// Compiles the C program `src` against `lib` into `exe`.
fn compile_c(src: &Path, lib: &Path, exe: &Path, extra: &[&str], what: &str) {
    let dir = crate_dir();
    let mut cc = command_from_env("CC", "gcc");
    cc.args(C_FLAGS)
        .arg("-O1")
        .args(extra)
        .arg("-I")
        .arg(dir.join("include"))
        .arg(src)
        .arg(lib)
        // What the Rust standard library inside libenvol.a links against.
        .args(["-lpthread", "-ldl", "-lm"])
        .arg("-o")
        .arg(exe);
    run(&mut cc, what);
}

/// How a compiled C program is started.
#[derive(Clone, Copy)]
enum Runner {
    /// Directly.
    Native,
    /// Through the command line in this environment variable (qemu-user).
    Env(&'static str),
    /// Under valgrind's memcheck; any error fails the run.
    Valgrind,
}

/// Runs a compiled C program, prints its output and returns its stdout;
/// panics unless it exits with status 0.
fn run_c_program(exe: &Path, runner: Runner, what: &str) -> String {
    let mut cmd = match runner {
        Runner::Env(var) => command_from_env(var, ""),
        Runner::Valgrind => {
            let mut c = Command::new("valgrind");
            c.args(["-q", "--error-exitcode=1", "--leak-check=no"]);
            c
        }
        Runner::Native => Command::new(exe),
    };
    if !matches!(runner, Runner::Native) {
        cmd.arg(exe);
    }
    let out = run(&mut cmd, what);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("--- {what}\n{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        println!("--- {what} (stderr)\n{stderr}");
    }
    stdout
}

/// Runs a compiled C test (through `runner` if given), prints its output and
/// checks its summary line.
fn run_c_test(exe: &Path, runner: Option<&'static str>, what: &str) {
    let runner = runner.map_or(Runner::Native, Runner::Env);
    let stdout = run_c_program(exe, runner, what);
    let summary = stdout.lines().last().unwrap_or_default();
    let passed = summary
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        passed > 0,
        "{what}: last line should be `N passed, 0 failed`, is {summary:?}"
    );
}

/// Builds `libenvol.a` with a nested cargo (its own target directory, so the
/// outer build lock is not contended), then compiles each C test program
/// (`ffi/tests/xts_test.c`, the engine; `ffi/tests/kms_test.c`, the key
/// service; `ffi/tests/volume_test.c`, volumes) against it and runs it:
/// plain, and under ASan + UBSan; then the example
/// `ffi/examples/hypervisor.c` the same way, and under valgrind if present.
///
/// Environment: `CARGO` (the cargo binary), `CC` (default `gcc`). For a
/// cross target set `ENVOL_CTEST_TARGET` (e.g. `aarch64-unknown-linux-gnu`),
/// `CC` to the cross compiler and `ENVOL_CTEST_RUNNER` to the runner (e.g.
/// `qemu-aarch64 -cpu max`): the programs are then linked `-static`, run
/// through the runner, and the sanitizer and valgrind runs are skipped.
#[test]
fn c_abi_tests_pass() {
    let ws = workspace_dir();
    let ctest = ws.join("target").join("ctest");
    let target = std::env::var("ENVOL_CTEST_TARGET")
        .ok()
        .filter(|t| !t.trim().is_empty());

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut build = Command::new(cargo);
    build
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", &ctest)
        .args(["build", "-p", "envol-ffi", "--release"]);
    let lib_dir = match &target {
        Some(t) => {
            build.args(["--target", t]);
            // The cdylib of the same build needs a linker for the target.
            let linker_var = format!(
                "CARGO_TARGET_{}_LINKER",
                t.to_uppercase().replace(['-', '.'], "_")
            );
            if std::env::var_os(&linker_var).is_none()
                && let Some(cc) = std::env::var("CC").ok().filter(|c| !c.trim().is_empty())
            {
                build.env(linker_var, cc.split_whitespace().next().unwrap_or("cc"));
            }
            ctest.join(t).join("release")
        }
        None => {
            // A host build, wherever the outer build was aimed.
            build.env_remove("CARGO_BUILD_TARGET");
            ctest.join("release")
        }
    };
    run(&mut build, "nested `cargo build -p envol-ffi --release`");
    let lib = lib_dir.join("libenvol.a");
    assert!(lib.is_file(), "{} was not built", lib.display());

    for name in C_TESTS {
        match &target {
            Some(t) => {
                let exe = ctest.join(format!("{name}-{t}"));
                compile_c_test(
                    name,
                    &lib,
                    &exe,
                    &["-static"],
                    &format!("{name} build for {t}"),
                );
                let runner = std::env::var("ENVOL_CTEST_RUNNER")
                    .ok()
                    .filter(|r| !r.trim().is_empty())
                    .map(|_| "ENVOL_CTEST_RUNNER");
                run_c_test(&exe, runner, &format!("{name} on {t}"));
            }
            None => {
                let exe = ctest.join(name);
                compile_c_test(name, &lib, &exe, &[], &format!("{name} build"));
                run_c_test(&exe, None, name);

                let exe = ctest.join(format!("{name}_asan"));
                compile_c_test(
                    name,
                    &lib,
                    &exe,
                    &[
                        "-g",
                        "-fsanitize=address,undefined",
                        "-fno-omit-frame-pointer",
                        "-fno-sanitize-recover=all",
                    ],
                    &format!("{name} build (ASan + UBSan)"),
                );
                run_c_test(&exe, None, &format!("{name} (ASan + UBSan)"));
            }
        }
    }
    run_hypervisor_example(&lib, &ctest, target.as_deref());
}

/// Whether `valgrind` can be started.
fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the hypervisor example and checks that it says every step behaved.
fn run_example(exe: &Path, runner: Runner, what: &str) {
    let stdout = run_c_program(exe, runner, what);
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l == "done: every step behaved as expected"),
        "{what}: did not end with `done: every step behaved as expected`"
    );
}

/// Builds `ffi/examples/hypervisor.c` (the volume lifecycle on a file-backed
/// disk through the C ABI) against `lib` and runs it: plain, under ASan +
/// UBSan, and under valgrind when it is installed; for a cross target,
/// linked `-static` and run through `ENVOL_CTEST_RUNNER` only.
fn run_hypervisor_example(lib: &Path, ctest: &Path, target: Option<&str>) {
    let src = crate_dir().join("examples").join("hypervisor.c");
    match target {
        Some(t) => {
            let exe = ctest.join(format!("hypervisor-{t}"));
            compile_c(
                &src,
                lib,
                &exe,
                &["-static"],
                &format!("hypervisor.c build for {t}"),
            );
            let runner = std::env::var("ENVOL_CTEST_RUNNER")
                .ok()
                .filter(|r| !r.trim().is_empty())
                .map_or(Runner::Native, |_| Runner::Env("ENVOL_CTEST_RUNNER"));
            run_example(&exe, runner, &format!("hypervisor on {t}"));
        }
        None => {
            let exe = ctest.join("hypervisor");
            compile_c(&src, lib, &exe, &[], "hypervisor.c build");
            run_example(&exe, Runner::Native, "hypervisor");
            if valgrind_available() {
                run_example(&exe, Runner::Valgrind, "hypervisor (valgrind)");
            } else {
                println!("--- hypervisor (valgrind): skipped, valgrind is not installed");
            }
            let asan = ctest.join("hypervisor_asan");
            compile_c(
                &src,
                lib,
                &asan,
                &[
                    "-g",
                    "-fsanitize=address,undefined",
                    "-fno-omit-frame-pointer",
                    "-fno-sanitize-recover=all",
                ],
                "hypervisor.c build (ASan + UBSan)",
            );
            run_example(&asan, Runner::Native, "hypervisor (ASan + UBSan)");
        }
    }
}

/// `include/envol.h` on its own compiles as strict C99, hosted and with
/// `-ffreestanding` (and as C++ when a C++ compiler is at hand): nothing in
/// it needs more than `stddef.h` and `stdint.h`.
#[test]
fn header_compiles_standalone() {
    let dir = crate_dir();
    let header = dir.join("include").join("envol.h");
    let cc_line = std::env::var("CC").unwrap_or_default();
    for extra in [&[][..], &["-ffreestanding"][..]] {
        let mut cc = command_from_env("CC", "gcc");
        cc.args(C_FLAGS)
            .args(extra)
            .args(["-fsyntax-only", "-x", "c"])
            .arg(&header);
        run(&mut cc, &format!("envol.h as C99 {extra:?}"));
    }
    // A C++ compiler beside the default gcc (cross builds set CC and skip).
    if cc_line.trim().is_empty() {
        let mut cxx = Command::new("g++");
        cxx.args(["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
            .args(["-fsyntax-only", "-x", "c++"])
            .arg(&header);
        match cxx.output() {
            Ok(out) => assert!(
                out.status.success(),
                "envol.h as C++11:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(_) => println!("envol.h as C++: skipped, g++ is not installed"),
        }
    }
}

/// The key-service ABI from Rust: the status table, the callback-status
/// mapping, and `CallbackKms` over the local handle's table and over
/// callbacks that misbehave.
mod kms_abi;

/// The volume ABI from Rust: every header and volume error has a status of
/// its own, and the adapter from a C device table to `BlockDevice`.
mod volume_abi;

/// Buffers inside the context or volume struct they are passed with are
/// refused (found by the `ffi_calls` fuzz target: ciphertext written into a
/// live `envol_xts` overwrote its engine, and the next call crashed).
mod overlap_abi;

/// `ffi/examples/remote_kms.c` built against a library with the `remote`
/// feature (one nested build in `target/ctest-remote`, shared by the tests
/// that run it; concurrent tests wait for each other on cargo's lock).
#[cfg(target_arch = "x86_64")]
fn remote_kms_example() -> PathBuf {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let ws = workspace_dir();
        let out_dir = ws.join("target").join("ctest-remote");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut build = Command::new(cargo);
        build
            .current_dir(&ws)
            .env("CARGO_TARGET_DIR", &out_dir)
            .env_remove("CARGO_BUILD_TARGET")
            .args([
                "build",
                "-p",
                "envol-ffi",
                "--release",
                "--features",
                "remote",
            ]);
        run(
            &mut build,
            "nested `cargo build -p envol-ffi --release --features remote`",
        );
        let lib = out_dir.join("release").join("libenvol.a");
        let exe = out_dir.join("remote_kms");
        compile_c(
            &crate_dir().join("examples").join("remote_kms.c"),
            &lib,
            &exe,
            &[],
            "remote_kms.c build",
        );
        exe
    })
    .clone()
}

/// A fresh scratch directory next to the example, for one test's service.
#[cfg(target_arch = "x86_64")]
fn remote_kms_scratch(what: &str) -> PathBuf {
    remote_kms_example().with_file_name(format!("{what}-{}", std::process::id()))
}

/// Runs the remote example and checks it ended well.
#[cfg(target_arch = "x86_64")]
fn remote_kms_example_passes(cmd: &mut Command, what: &str) {
    let out = run(cmd, what);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("--- {what}\n{stdout}");
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l == "done: every step behaved as expected"),
        "{what}: did not end with `done: every step behaved as expected`"
    );
}

/// `ffi/examples/remote_kms.c` against a library built with the `remote`
/// feature: the volume lifecycle with master keys in AWS KMS (moto at
/// `ENVOL_MOTO_ENDPOINT`, which `.ci/run` starts) and inside a SoftHSM2
/// token this test initialises, each behind the data-key cache.
#[cfg(target_arch = "x86_64")]
#[test]
#[cfg_attr(
    any(envol_no_moto_endpoint, envol_no_softhsm),
    ignore = "needs a running moto at ENVOL_MOTO_ENDPOINT and SoftHSM2"
)]
fn remote_kms_example_runs_on_moto_and_softhsm() {
    // Reached only when the build found both (otherwise this test is
    // compiled `#[ignore]`, see build/services.rs).
    let moto = std::env::var("ENVOL_MOTO_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    let module = "/usr/lib/softhsm/libsofthsm2.so";
    let hsm = Path::new(module).is_file();
    assert!(
        moto.is_some() && hsm,
        "needs ENVOL_MOTO_ENDPOINT (moto) {moto:?} and SoftHSM2 at {module} ({hsm})"
    );
    let exe = remote_kms_example();
    if let Some(endpoint) = moto {
        let mut admin = envol_kms::aws::AwsKms::new(envol_kms::aws::AwsConfig::new(
            endpoint.clone(),
            "us-east-1",
            envol_kms::aws::AwsCredentials {
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
                    &serde_json::json!({"Description": "envol C example"}),
                )
                .unwrap();
            k["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
        };
        let (a, b) = (key(), key());
        let mut cmd = Command::new(&exe);
        cmd.env("ENVOL_KMS", "aws")
            .env("AWS_ENDPOINT_URL_KMS", &endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env_remove("AWS_PROFILE")
            .env("ENVOL_KEY_ID", &a)
            .env("ENVOL_KEY_ID_2", &b);
        remote_kms_example_passes(&mut cmd, "remote_kms on AWS KMS (moto)");
    }

    if hsm {
        let dir = remote_kms_scratch("softhsm");
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let mut init = Command::new("softhsm2-util");
        init.env("SOFTHSM2_CONF", &conf).args([
            "--init-token",
            "--free",
            "--label",
            "envol-c",
            "--so-pin",
            "12345678",
            "--pin",
            "1234",
        ]);
        run(&mut init, "softhsm2-util --init-token");
        let mut cmd = Command::new(&exe);
        cmd.env("SOFTHSM2_CONF", &conf)
            .env("ENVOL_KMS", "pkcs11")
            .env("ENVOL_PKCS11_MODULE", module)
            .env("ENVOL_PKCS11_TOKEN", "envol-c")
            .env("ENVOL_PKCS11_PIN", "1234")
            .env("ENVOL_CREATE_KEYS", "1")
            .env("ENVOL_KEY_ID", "disk-key")
            .env("ENVOL_KEY_ID_2", "disk-key-2");
        remote_kms_example_passes(&mut cmd, "remote_kms on a PKCS#11 token (SoftHSM2)");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `ffi/examples/remote_kms.c` on a KMIP server: PyKMIP's, started here on
/// 127.0.0.1 with certificates this test makes; the example creates its
/// two master keys on the server through `envol_kmip_kms_create_key`.
#[cfg(target_arch = "x86_64")]
#[test]
#[cfg_attr(envol_no_pykmip, ignore = "needs pykmip-server and openssl")]
fn remote_kms_example_runs_on_pykmip() {
    let exe = remote_kms_example();
    let server = pykmip::Server::start(&remote_kms_scratch("pykmip"));
    let (ca, cert, key) = server.client("client");
    let mut cmd = Command::new(&exe);
    cmd.env("ENVOL_KMS", "kmip")
        .env("ENVOL_KMIP_ADDRESS", server.address())
        .env("ENVOL_KMIP_CA", ca)
        .env("ENVOL_KMIP_CERT", cert)
        .env("ENVOL_KMIP_KEY", key)
        .env_remove("ENVOL_KMIP_SERVER_NAME")
        .env("ENVOL_CREATE_KEYS", "1")
        .env("ENVOL_KEY_ID", "disk-key")
        .env("ENVOL_KEY_ID_2", "disk-key-2");
    remote_kms_example_passes(&mut cmd, "remote_kms on a KMIP server (PyKMIP)");
}

#[cfg(target_arch = "x86_64")]
include!("../../build/pykmip.rs");
