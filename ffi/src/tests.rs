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
mod kms_abi {
    use core::ffi::{c_char, c_void};
    use std::ffi::CString;

    use envol::envelope::{Context, MAX_BLOB};
    use envol::kms::{Kms, KmsError};
    use envol::xts::KeySize;

    use crate::boundary::{StrError, envol_status, envol_status_arg, in_str, kms_result};
    use crate::kms::{CallbackKms, envol_kms_callbacks, envol_kv};
    use crate::local_kms::{
        envol_local_kms, envol_local_kms_callbacks, envol_local_kms_create_key,
        envol_local_kms_free, envol_local_kms_new, envol_local_kms_set_service_policy,
    };

    #[test]
    fn status_table_is_complete() {
        let mut names = std::collections::BTreeSet::new();
        let n = u32::try_from(envol_status::ALL.len()).unwrap();
        for v in 0..n {
            let s = envol_status::from_raw(v).unwrap_or_else(|| panic!("status {v} missing"));
            assert_eq!(s as u32, v);
            let name = s.name_cstr().to_str().unwrap();
            assert!(name.starts_with("ENVOL_"), "{name}");
            assert!(names.insert(name), "{name} twice");
        }
        assert_eq!(envol_status::ALL.len(), 44);
        assert_eq!(envol_status::from_raw(n), None);
        assert_eq!(envol_status::from_raw(u32::MAX), None);
    }

    #[test]
    fn kms_errors_map_both_ways() {
        let mut seen = std::collections::BTreeSet::new();
        for e in KmsError::ALL {
            let s = envol_status::from(e);
            assert_ne!(s, envol_status::ENVOL_ERR_INTERNAL, "{e:?}");
            assert_ne!(s, envol_status::ENVOL_OK, "{e:?}");
            assert!(seen.insert(s as u32), "{e:?} shares a status");
            // One spelling: the core's name for the error is the status's.
            assert_eq!(s.name_cstr().to_str().unwrap(), e.status_name(), "{e:?}");
            // What a callback returns comes back as the same error.
            assert_eq!(kms_result(envol_status_arg(s as u32)), Err(e));
        }
        assert_eq!(kms_result(envol_status_arg(0)), Ok(()));
        for raw in [44, 777, u32::MAX] {
            assert_eq!(
                kms_result(envol_status_arg(raw)),
                Err(KmsError::Unavailable)
            );
        }
        let weak = envol_status::ENVOL_ERR_WEAK_KEY as u32;
        assert_eq!(
            kms_result(envol_status_arg(weak)),
            Err(KmsError::Unavailable)
        );
        let ctx = envol_status::ENVOL_ERR_CONTEXT as u32;
        assert_eq!(
            kms_result(envol_status_arg(ctx)),
            Err(KmsError::InvalidArgument)
        );
    }

    #[test]
    fn in_str_is_bounded() {
        let s = c"abcd";
        // SAFETY: NUL-terminated literals.
        unsafe {
            assert_eq!(in_str(s.as_ptr(), 4), Ok("abcd"));
            assert_eq!(in_str(s.as_ptr(), 3), Err(StrError::TooLong));
            assert_eq!(in_str(s.as_ptr(), 0), Err(StrError::TooLong));
            assert_eq!(in_str(c"".as_ptr(), 0), Ok(""));
            assert_eq!(in_str(core::ptr::null(), 9), Err(StrError::Null));
            assert_eq!(in_str(c"a\xffb".as_ptr(), 9), Err(StrError::NotUtf8));
        }
    }

    const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"Envol":"hv"},"Action":"kms:*"}]}"#;

    /// A handle with keys `k1` and `k2` that `hv` may do anything with.
    fn local() -> *mut envol_local_kms {
        let mut h = core::ptr::null_mut();
        let policy = CString::new(POLICY).unwrap();
        // SAFETY: valid pointers and NUL-terminated strings throughout.
        unsafe {
            assert_eq!(envol_local_kms_new(&mut h), envol_status::ENVOL_OK);
            let st = envol_local_kms_set_service_policy(h, c"op".as_ptr(), c"{\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"Envol\":\"op\"},\"Action\":\"kms:CreateKey\"}}".as_ptr());
            assert_eq!(st, envol_status::ENVOL_OK);
            for id in [c"k1", c"k2"] {
                let st =
                    envol_local_kms_create_key(h, c"op".as_ptr(), id.as_ptr(), policy.as_ptr());
                assert_eq!(st, envol_status::ENVOL_OK);
            }
        }
        h
    }

    fn table_of(h: *mut envol_local_kms) -> envol_kms_callbacks {
        let mut t = envol_kms_callbacks {
            user: core::ptr::null_mut(),
            generate_data_key: None,
            decrypt_data_key: None,
            re_encrypt: None,
            retire_context: None,
        };
        // SAFETY: a live handle and a writable table.
        let st = unsafe { envol_local_kms_callbacks(h, &mut t) };
        assert_eq!(st, envol_status::ENVOL_OK);
        t
    }

    #[test]
    fn callback_kms_over_the_local_handle() {
        let h = local();
        // SAFETY: the local table's functions keep the contract while `h` lives.
        let mut kms = unsafe { CallbackKms::new(table_of(h)) };
        let ctx = Context::new(&[("volume", "vol-1"), ("host", "h")]).unwrap();
        let other = Context::new(&[("volume", "vol-2")]).unwrap();
        let mut blob = [0u8; MAX_BLOB];
        let (dek, n) = kms
            .generate_data_key("hv", "k1", KeySize::Aes256, &ctx, &mut blob)
            .unwrap();
        assert_eq!(n, 43 + 2 + 64);
        let again = kms.decrypt_data_key("hv", &blob[..n], &ctx).unwrap();
        assert_eq!(again.as_bytes(), dek.as_bytes());
        assert_eq!(
            kms.decrypt_data_key("hv", &blob[..n], &other).unwrap_err(),
            KmsError::InvalidCiphertext
        );
        assert_eq!(
            kms.decrypt_data_key("eve", &blob[..n], &ctx).unwrap_err(),
            KmsError::AccessDenied
        );

        let mut wrapped = [0u8; MAX_BLOB];
        let m = kms
            .generate_data_key_without_plaintext("hv", "k1", KeySize::Aes128, &other, &mut wrapped)
            .unwrap();
        assert_eq!(
            kms.decrypt_data_key("hv", &wrapped[..m], &other)
                .unwrap()
                .as_bytes()
                .len(),
            32
        );

        let mut moved = [0u8; MAX_BLOB];
        let r = kms
            .re_encrypt("hv", &blob[..n], &ctx, "k2", &other, &mut moved)
            .unwrap();
        let moved_key = kms.decrypt_data_key("hv", &moved[..r], &other).unwrap();
        assert_eq!(moved_key.as_bytes(), dek.as_bytes());

        // Small secrets have no callbacks.
        let mut out = [0u8; 64];
        assert_eq!(
            kms.encrypt("hv", "k1", &ctx, b"x", &mut out),
            Err(KmsError::Unavailable)
        );
        assert_eq!(
            kms.decrypt("hv", &blob[..n], &ctx, &mut out),
            Err(KmsError::Unavailable)
        );

        // Arguments that cannot become C strings, or are over the bounds.
        let long = "p".repeat(257);
        for p in [long.as_str(), "h\0v"] {
            assert_eq!(
                kms.decrypt_data_key(p, &blob[..n], &ctx).unwrap_err(),
                KmsError::InvalidArgument
            );
        }
        let long_id = "k".repeat(65);
        assert_eq!(
            kms.generate_data_key("hv", &long_id, KeySize::Aes256, &ctx, &mut blob)
                .unwrap_err(),
            KmsError::InvalidArgument
        );
        // A short output buffer: refused by the service, nothing written.
        let mut small = [0x5au8; 40];
        assert_eq!(
            kms.generate_data_key("hv", "k1", KeySize::Aes256, &ctx, &mut small)
                .unwrap_err(),
            KmsError::BufferTooSmall
        );
        assert!(small.iter().all(|&b| b == 0x5a));
        // SAFETY: made by `envol_local_kms_new`, not used again.
        unsafe { envol_local_kms_free(h) };
    }

    /// How the misbehaving callbacks below answer.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Honest,
        LenPastCap,
        ZeroLen,
        NoLen,
        DekLen(usize),
        Status(u32),
    }

    struct Fake {
        mode: Mode,
        calls: u32,
        principal: String,
        context: Vec<(String, String)>,
    }

    /// # Safety
    /// `p` is a NUL-terminated string.
    unsafe fn string(p: *const c_char) -> String {
        // SAFETY: forwarded contract.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// # Safety
    /// `ctx` valid for `n` pairs of NUL-terminated strings.
    unsafe fn pairs(ctx: *const envol_kv, n: usize) -> Vec<(String, String)> {
        // SAFETY: forwarded contract.
        let kv = unsafe { core::slice::from_raw_parts(ctx, n) };
        // SAFETY: forwarded contract.
        kv.iter()
            .map(|p| unsafe { (string(p.key), string(p.value)) })
            .collect()
    }

    unsafe extern "C" fn fake_generate(
        user: *mut c_void,
        principal: *const c_char,
        _key_id: *const c_char,
        dek_len: usize,
        ctx: *const envol_kv,
        ctx_len: usize,
        dek_out: *mut u8,
        blob_out: *mut u8,
        blob_cap: usize,
        blob_len: *mut usize,
    ) -> envol_status_arg {
        // SAFETY: `user` is the test's `Fake`; the other pointers follow the
        // table's contract.
        unsafe {
            let f = &mut *user.cast::<Fake>();
            f.calls += 1;
            f.principal = string(principal);
            f.context = pairs(ctx, ctx_len);
            for i in 0..dek_len {
                dek_out.add(i).write((i % 251) as u8);
            }
            for i in 0..blob_cap.min(20) {
                blob_out.add(i).write(0xb0);
            }
            match f.mode {
                Mode::LenPastCap => blob_len.write(blob_cap + 1),
                Mode::ZeroLen => blob_len.write(0),
                Mode::NoLen => {}
                Mode::Status(s) => return envol_status_arg(s),
                _ => blob_len.write(blob_cap.min(20)),
            }
        }
        envol_status_arg(0)
    }

    unsafe extern "C" fn fake_decrypt(
        user: *mut c_void,
        principal: *const c_char,
        _blob: *const u8,
        _blob_len: usize,
        ctx: *const envol_kv,
        ctx_len: usize,
        dek_out: *mut u8,
        dek_cap: usize,
        dek_len: *mut usize,
    ) -> envol_status_arg {
        // SAFETY: as for `fake_generate`.
        unsafe {
            let f = &mut *user.cast::<Fake>();
            f.calls += 1;
            f.principal = string(principal);
            f.context = pairs(ctx, ctx_len);
            for i in 0..dek_cap.min(64) {
                dek_out.add(i).write((i % 251) as u8);
            }
            match f.mode {
                Mode::DekLen(n) => dek_len.write(n),
                Mode::NoLen => {}
                Mode::Status(s) => return envol_status_arg(s),
                _ => dek_len.write(64),
            }
        }
        envol_status_arg(0)
    }

    #[test]
    fn callback_kms_distrusts_callbacks() {
        let mut fake = Fake {
            mode: Mode::Honest,
            calls: 0,
            principal: String::new(),
            context: Vec::new(),
        };
        // From here on `fake` is reached only through this pointer.
        let fp: *mut Fake = &raw mut fake;
        // SAFETY: `fp` points to the live `fake`; no reference to it is held
        // while a callback runs.
        let set_mode = |mode: Mode| unsafe { (*fp).mode = mode };
        let table = envol_kms_callbacks {
            user: fp.cast(),
            generate_data_key: Some(fake_generate),
            decrypt_data_key: Some(fake_decrypt),
            re_encrypt: None,
            retire_context: None,
        };
        // SAFETY: the fakes keep the contract while `fake` lives.
        let mut kms = unsafe { CallbackKms::new(table) };
        let ctx = Context::new(&[("volume", "v"), ("a", "b")]).unwrap();
        let mut blob = [0x5au8; 64];

        let (dek, n) = kms
            .generate_data_key("hv", "k", KeySize::Aes128, &ctx, &mut blob)
            .unwrap();
        assert_eq!((dek.as_bytes().len(), n), (32, 20));
        assert!(blob[..20].iter().all(|&b| b == 0xb0));
        let key = kms.decrypt_data_key("hv", b"blob", &ctx).unwrap();
        assert_eq!(key.as_bytes().len(), 64);

        for mode in [
            Mode::LenPastCap,
            Mode::ZeroLen,
            Mode::NoLen,
            Mode::Status(777),
        ] {
            set_mode(mode);
            let mut out = [0x5au8; 64];
            let r = kms.generate_data_key("hv", "k", KeySize::Aes256, &ctx, &mut out);
            assert_eq!(r.unwrap_err(), KmsError::Unavailable);
            assert!(out.iter().all(|&b| b == 0x5a), "output written on failure");
        }
        for mode in [
            Mode::DekLen(1000),
            Mode::DekLen(16),
            Mode::DekLen(0),
            Mode::DekLen(usize::MAX),
            Mode::NoLen,
            Mode::Status(777),
            Mode::Status(envol_status::ENVOL_ERR_WEAK_KEY as u32),
        ] {
            set_mode(mode);
            assert_eq!(
                kms.decrypt_data_key("hv", b"blob", &ctx).unwrap_err(),
                KmsError::Unavailable
            );
        }
        set_mode(Mode::Status(envol_status::ENVOL_ERR_ACCESS_DENIED as u32));
        assert_eq!(
            kms.decrypt_data_key("hv", b"blob", &ctx).unwrap_err(),
            KmsError::AccessDenied
        );
        let mut out = [0u8; 64];
        assert_eq!(
            kms.re_encrypt("hv", b"blob", &ctx, "k", &ctx, &mut out),
            Err(KmsError::Unavailable)
        );
        // What the callbacks saw: NUL-terminated copies, context sorted.
        // SAFETY: `kms` holds a raw pointer only; no other reference is live.
        let seen = unsafe { &*fp };
        assert_eq!(seen.principal, "hv");
        assert_eq!(
            seen.context,
            [
                ("a".to_owned(), "b".to_owned()),
                ("volume".to_owned(), "v".to_owned())
            ]
        );
        assert_eq!(seen.calls, 14);

        // NULL callbacks.
        // SAFETY: no callbacks at all.
        let mut none = unsafe {
            CallbackKms::new(envol_kms_callbacks {
                user: core::ptr::null_mut(),
                generate_data_key: None,
                decrypt_data_key: None,
                re_encrypt: None,
                retire_context: None,
            })
        };
        assert_eq!(
            none.decrypt_data_key("hv", b"blob", &ctx).unwrap_err(),
            KmsError::Unavailable
        );
        assert_eq!(
            none.generate_data_key("hv", "k", KeySize::Aes256, &ctx, &mut out)
                .unwrap_err(),
            KmsError::Unavailable
        );
    }
}

/// The volume ABI from Rust: every header and volume error has a status of
/// its own, and the adapter from a C device table to `BlockDevice`.
mod volume_abi {
    use core::ffi::{c_int, c_void};

    use envol::header::HeaderError;
    use envol::kms::KmsError;
    use envol::volume::{BlockDevice, IoError, VolumeError};
    use envol::xts::Error as XtsError;

    use crate::boundary::envol_status;
    use crate::volume::{
        CallbackDevice, ENVOL_VOLUME_SIZE, envol_block_device, envol_volume, envol_volume_size,
    };

    const HEADER_ERRORS: [HeaderError; 8] = [
        HeaderError::BadMagic,
        HeaderError::UnsupportedVersion(2),
        HeaderError::UnknownFlags(1),
        HeaderError::Corrupt,
        HeaderError::BothCorrupt,
        HeaderError::Malformed("sector size"),
        HeaderError::Tampered,
        HeaderError::BufferTooSmall,
    ];

    /// The library's own status names (what the command line prints) are
    /// the C ABI's, for every error.
    #[test]
    fn rust_status_names_are_the_c_names() {
        let c_name = |s: envol_status| {
            // SAFETY: a static NUL-terminated string.
            unsafe { std::ffi::CStr::from_ptr(crate::envol_status_name(s.into())) }
                .to_str()
                .unwrap()
                .to_owned()
        };
        let mut volume = vec![
            VolumeError::Io(IoError(5)),
            VolumeError::OutOfRange,
            VolumeError::Retired,
            VolumeError::KeyMismatch,
            VolumeError::Exists,
            VolumeError::LeaseExpired,
            VolumeError::Header(HeaderError::Malformed("volume id")),
            VolumeError::Header(HeaderError::WrongVolume),
        ];
        volume.extend(HEADER_ERRORS.map(VolumeError::Header));
        volume.extend(
            [
                XtsError::KeyLength,
                XtsError::WeakKey,
                XtsError::SectorSize,
                XtsError::Length,
                XtsError::SectorOverflow,
                XtsError::BackendUnavailable,
            ]
            .map(VolumeError::Xts),
        );
        volume.extend(KmsError::ALL.map(VolumeError::Kms));
        for e in volume {
            assert_eq!(e.status_name(), c_name(envol_status::from(e)), "{e:?}");
        }
    }

    #[test]
    fn header_and_volume_errors_map_to_their_own_statuses() {
        let mut seen = std::collections::BTreeSet::new();
        for e in HEADER_ERRORS {
            let s = envol_status::from(e);
            assert_ne!(s, envol_status::ENVOL_ERR_INTERNAL, "{e:?}");
            assert_ne!(s, envol_status::ENVOL_OK, "{e:?}");
            assert!(seen.insert(s as u32), "{e:?} shares a status");
            assert_eq!(envol_status::from(VolumeError::Header(e)), s);
        }
        assert_eq!(
            envol_status::from(HeaderError::UnsupportedVersion(7)),
            envol_status::ENVOL_ERR_HEADER_VERSION
        );
        assert_eq!(
            envol_status::from(HeaderError::Malformed("key id")),
            envol_status::ENVOL_ERR_HEADER_MALFORMED
        );
        for e in [
            VolumeError::Io(IoError(5)),
            VolumeError::OutOfRange,
            VolumeError::Retired,
            VolumeError::KeyMismatch,
        ] {
            let s = envol_status::from(e);
            assert_ne!(s, envol_status::ENVOL_ERR_INTERNAL, "{e:?}");
            assert!(seen.insert(s as u32), "{e:?} shares a status");
        }
        assert_eq!(
            envol_status::from(VolumeError::Io(IoError(-1))),
            envol_status::ENVOL_ERR_IO
        );
        // Wrapped errors keep the statuses of their own parts.
        for e in [
            KmsError::AccessDenied,
            KmsError::Disabled,
            KmsError::Unavailable,
        ] {
            assert_eq!(
                envol_status::from(VolumeError::Kms(e)),
                envol_status::from(e)
            );
        }
        for e in [XtsError::Length, XtsError::SectorSize, XtsError::WeakKey] {
            assert_eq!(
                envol_status::from(VolumeError::Xts(e)),
                envol_status::from(e)
            );
        }
        // The state statuses are not any error's.
        for s in [
            envol_status::ENVOL_ERR_VOLUME_ATTACHED,
            envol_status::ENVOL_ERR_VOLUME_DETACHED,
            envol_status::ENVOL_ERR_VOLUME_PARAMS,
        ] {
            assert!(seen.insert(s as u32), "{s:?} shares a status");
        }
    }

    #[test]
    fn volume_struct_size() {
        assert_eq!(envol_volume_size(), ENVOL_VOLUME_SIZE);
        assert_eq!(size_of::<envol_volume>(), ENVOL_VOLUME_SIZE);
        println!(
            "envol_volume: {} bytes, {} used",
            ENVOL_VOLUME_SIZE,
            crate::volume::used_size()
        );
    }

    /// A device over a vector, failing with `fail` when it is not 0.
    struct Disk {
        bytes: Vec<u8>,
        fail: c_int,
        calls: u32,
    }

    /// # Safety
    /// `user` is a live `Disk`; `buf` valid for `len` bytes.
    unsafe extern "C" fn disk_read(user: *mut c_void, off: u64, buf: *mut u8, len: usize) -> c_int {
        // SAFETY: the contract above.
        let d = unsafe { &mut *user.cast::<Disk>() };
        d.calls += 1;
        if d.fail != 0 {
            return d.fail;
        }
        let o = usize::try_from(off).unwrap();
        // SAFETY: the contract above.
        unsafe { core::ptr::copy_nonoverlapping(d.bytes[o..o + len].as_ptr(), buf, len) };
        0
    }

    /// # Safety
    /// As for `disk_read`.
    unsafe extern "C" fn disk_write(
        user: *mut c_void,
        off: u64,
        buf: *const u8,
        len: usize,
    ) -> c_int {
        // SAFETY: the contract above.
        let d = unsafe { &mut *user.cast::<Disk>() };
        d.calls += 1;
        if d.fail != 0 {
            return d.fail;
        }
        let o = usize::try_from(off).unwrap();
        // SAFETY: the contract above.
        let src = unsafe { core::slice::from_raw_parts(buf, len) };
        d.bytes[o..o + len].copy_from_slice(src);
        0
    }

    /// # Safety
    /// `user` is a live `Disk`.
    unsafe extern "C" fn disk_flush(user: *mut c_void) -> c_int {
        // SAFETY: the contract above.
        let d = unsafe { &mut *user.cast::<Disk>() };
        d.calls += 1;
        d.fail
    }

    #[test]
    fn callback_device_adapter() {
        let mut disk = Disk {
            bytes: vec![0; 64],
            fail: 0,
            calls: 0,
        };
        let dp: *mut Disk = &raw mut disk;
        let table = envol_block_device {
            user: dp.cast(),
            read_at: Some(disk_read),
            write_at: Some(disk_write),
            flush: Some(disk_flush),
        };
        // SAFETY: the callbacks keep the contract while `disk` lives.
        let dev = unsafe { CallbackDevice::new(table) };
        dev.write_at(8, b"abcd").unwrap();
        let mut four = [0u8; 4];
        dev.read_at(8, &mut four).unwrap();
        assert_eq!(&four, b"abcd");
        dev.flush().unwrap();
        // Zero-length transfers never reach the callbacks.
        dev.read_at(0, &mut []).unwrap();
        dev.write_at(0, &[]).unwrap();
        // SAFETY: no reference into `disk` is live while the device runs.
        let (calls, set_fail) = unsafe { ((*dp).calls, &raw mut (*dp).fail) };
        assert_eq!(calls, 3);
        for rc in [5, -1, i32::MAX] {
            // SAFETY: as above.
            unsafe { set_fail.write(rc) };
            assert_eq!(dev.read_at(0, &mut four), Err(IoError(rc)));
            assert_eq!(dev.write_at(0, b"x"), Err(IoError(rc)));
            assert_eq!(dev.flush(), Err(IoError(rc)));
        }
        // No flush callback: writes count as durable.
        // SAFETY: a table without callbacks is never called.
        let bare = unsafe {
            CallbackDevice::new(envol_block_device {
                user: core::ptr::null_mut(),
                read_at: None,
                write_at: None,
                flush: None,
            })
        };
        assert_eq!(bare.flush(), Ok(()));
        assert_eq!(bare.read_at(0, &mut four), Err(IoError(5)));
        assert_eq!(bare.write_at(0, b"x"), Err(IoError(5)));
    }
}

/// Buffers inside the context or volume struct they are passed with are
/// refused (found by the `ffi_calls` fuzz target: ciphertext written into a
/// live `envol_xts` overwrote its engine, and the next call crashed).
mod overlap_abi {
    use core::ffi::{c_char, c_int, c_void};

    use crate::boundary::envol_status;
    use crate::kms::envol_kms_callbacks;
    use crate::local_kms::{
        envol_local_kms_callbacks, envol_local_kms_create_key, envol_local_kms_free,
        envol_local_kms_new, envol_local_kms_set_service_policy,
    };
    use crate::volume::{
        ENVOL_VOLUME_SIZE, envol_block_device, envol_volume, envol_volume_close,
        envol_volume_create, envol_volume_info, envol_volume_params,
    };
    use crate::xts::{
        ENVOL_XTS_SIZE, envol_xts, envol_xts_decrypt_unit, envol_xts_encrypt_sectors,
        envol_xts_init, envol_xts_wipe,
    };

    const OK: envol_status = envol_status::ENVOL_OK;
    const OVERLAP: envol_status = envol_status::ENVOL_ERR_OVERLAP;

    /// A context with room after it, so a buffer may start inside it.
    #[repr(C, align(64))]
    struct Room {
        ctx: [u8; ENVOL_XTS_SIZE],
        tail: [u8; 1024],
    }

    #[test]
    fn xts_buffers_inside_the_context_are_refused() {
        let mut room = Room {
            ctx: [0; ENVOL_XTS_SIZE],
            tail: [0; 1024],
        };
        let p: *mut u8 = room.ctx.as_mut_ptr();
        let c: *mut envol_xts = p.cast();
        let key: Vec<u8> = (0..64u8).collect();
        let mut data = [7u8; 512];
        let d = data.as_mut_ptr();
        // SAFETY: `c` is an aligned, writable context; every buffer below is
        // valid for 512 bytes (inside `room` or `data`).
        unsafe {
            assert_eq!(envol_xts_init(c, key.as_ptr(), key.len()), OK);
            let before = room.ctx;
            for (input, out) in [
                (d.cast_const(), p.add(8)),
                (p.add(512).cast_const(), p.add(512)),
                (p.add(1024).cast_const(), d),
                (d.cast_const(), p.add(ENVOL_XTS_SIZE - 1)),
            ] {
                assert_eq!(
                    envol_xts_encrypt_sectors(c, 0, 512, input, out, 512),
                    OVERLAP
                );
            }
            let tweak = [0u8; 16];
            assert_eq!(
                envol_xts_decrypt_unit(c, tweak.as_ptr(), d, p.add(100), 100),
                OVERLAP
            );
            assert_eq!(room.ctx, before, "the context changed");
            assert!(room.tail.iter().all(|&b| b == 0));
            // Right after the context is fine, and the engine still works.
            let after = p.add(ENVOL_XTS_SIZE);
            assert_eq!(envol_xts_encrypt_sectors(c, 0, 512, d, after, 512), OK);
            envol_xts_wipe(c);
        }
    }

    /// # Safety
    /// `user` is a live `Vec<u8>`; `buf` valid for `len` bytes.
    unsafe extern "C" fn read_at(user: *mut c_void, off: u64, buf: *mut u8, len: usize) -> c_int {
        // SAFETY: the contract above.
        let disk = unsafe { &*user.cast::<Vec<u8>>() };
        let o = usize::try_from(off).unwrap();
        // SAFETY: as above.
        unsafe { core::ptr::copy_nonoverlapping(disk[o..o + len].as_ptr(), buf, len) };
        0
    }

    /// # Safety
    /// As for `read_at`.
    unsafe extern "C" fn write_at(
        user: *mut c_void,
        off: u64,
        buf: *const u8,
        len: usize,
    ) -> c_int {
        // SAFETY: the contract above.
        let disk = unsafe { &mut *user.cast::<Vec<u8>>() };
        let o = usize::try_from(off).unwrap();
        // SAFETY: as above.
        disk[o..o + len].copy_from_slice(unsafe { core::slice::from_raw_parts(buf, len) });
        0
    }

    #[test]
    fn volume_info_outputs_inside_the_volume_are_refused() {
        let mut disk = vec![0u8; 8192 + 8 * 512];
        let dev = envol_block_device {
            user: (&raw mut disk).cast(),
            read_at: Some(read_at),
            write_at: Some(write_at),
            flush: None,
        };
        let params = envol_volume_params {
            cipher: 1,
            sector_size: 512,
            data_offset: 8192,
            volume_size: 8 * 512,
            volume_id: [3; 16],
        };
        let policy =
            c"{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\"}]}";
        // SAFETY: all-zero bytes are an empty volume.
        let mut vol = unsafe { Box::<envol_volume>::new_zeroed().assume_init() };
        let v: *mut envol_volume = &raw mut *vol;
        let base = v.cast::<u8>();
        let mut h = core::ptr::null_mut();
        let mut table = envol_kms_callbacks {
            user: core::ptr::null_mut(),
            generate_data_key: None,
            decrypt_data_key: None,
            re_encrypt: None,
            retire_context: None,
        };
        // SAFETY: valid pointers and NUL-terminated strings throughout; the
        // disk and the handle outlive the volume.
        unsafe {
            assert_eq!(envol_local_kms_new(&mut h), OK);
            let st = envol_local_kms_set_service_policy(h, c"op".as_ptr(), policy.as_ptr());
            assert_eq!(st, OK);
            let st = envol_local_kms_create_key(h, c"op".as_ptr(), c"k".as_ptr(), policy.as_ptr());
            assert_eq!(st, OK);
            assert_eq!(envol_local_kms_callbacks(h, &mut table), OK);
            let st = envol_volume_create(v, &dev, &table, c"op".as_ptr(), c"k".as_ptr(), &params);
            assert_eq!(st, OK);
            let before = core::slice::from_raw_parts(base, ENVOL_VOLUME_SIZE).to_vec();
            let mut p = core::mem::MaybeUninit::<envol_volume_params>::zeroed();
            let mut seq = 0u64;
            let mut id = [0 as c_char; 65];
            let mut att: c_int = 9;
            let (pp, sp, ip, ap) = (p.as_mut_ptr(), &raw mut seq, id.as_mut_ptr(), &raw mut att);
            let inside = |at: usize| base.add(at);
            let last = ENVOL_VOLUME_SIZE - 1;
            for (a, b, c, d) in [
                (inside(4000).cast(), sp, ip, ap),
                (pp, inside(0).cast(), ip, ap),
                (pp, sp, inside(ENVOL_VOLUME_SIZE - 65).cast(), ap),
                (pp, sp, ip, inside(last - 3).cast()),
            ] {
                assert_eq!(envol_volume_info(v, a, b, c, d), OVERLAP);
                assert_eq!(
                    core::slice::from_raw_parts(base, ENVOL_VOLUME_SIZE),
                    &before[..]
                );
            }
            assert_eq!((seq, att), (0, 9));
            assert_eq!(envol_volume_info(v, pp, sp, ip, ap), OK);
            assert_eq!((att, p.assume_init().sector_size), (1, 512));
            envol_volume_close(v);
            envol_local_kms_free(h);
        }
    }
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
    let finished = |stdout: &str, what: &str| {
        println!("--- {what}\n{stdout}");
        assert!(
            stdout
                .lines()
                .last()
                .is_some_and(|l| l == "done: every step behaved as expected"),
            "{what}: did not end with `done: every step behaved as expected`"
        );
    };

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
        let out = run(&mut cmd, "remote_kms on AWS KMS (moto)");
        finished(
            &String::from_utf8_lossy(&out.stdout),
            "remote_kms on AWS KMS (moto)",
        );
    }

    if hsm {
        let dir = out_dir.join(format!("softhsm-{}", std::process::id()));
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
        let out = run(&mut cmd, "remote_kms on a PKCS#11 token (SoftHSM2)");
        finished(
            &String::from_utf8_lossy(&out.stdout),
            "remote_kms on a PKCS#11 token (SoftHSM2)",
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
