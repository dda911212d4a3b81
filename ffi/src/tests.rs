//! Rust-side checks of the ABI: the committed header is what cbindgen makes
//! of the sources today, and the C test programs pass (plain and sanitized).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

/// Compiles `ffi/tests/xts_test.c` against `lib` into `exe`.
fn compile_c_test(lib: &Path, exe: &Path, extra: &[&str], what: &str) {
    let dir = crate_dir();
    let mut cc = command_from_env("CC", "gcc");
    cc.args([
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-O1",
    ])
    .args(extra)
    .arg("-I")
    .arg(dir.join("include"))
    .arg(dir.join("tests/xts_test.c"))
    .arg(lib)
    // What the Rust standard library inside libenvol.a links against.
    .args(["-lpthread", "-ldl", "-lm"])
    .arg("-o")
    .arg(exe);
    run(&mut cc, what);
}

/// Runs a compiled C test (through `runner` if given), prints its output and
/// checks its summary line.
fn run_c_test(exe: &Path, runner: Option<&str>, what: &str) {
    let mut cmd = match runner {
        Some(var) => {
            let mut c = command_from_env(var, "");
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let out = run(&mut cmd, what);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("--- {what}\n{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        println!("--- {what} (stderr)\n{stderr}");
    }
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
/// outer build lock is not contended), then compiles `ffi/tests/xts_test.c`
/// against it and runs it: plain, and under ASan + UBSan.
///
/// Environment: `CARGO` (the cargo binary), `CC` (default `gcc`). For a
/// cross target set `ENVOL_CTEST_TARGET` (e.g. `aarch64-unknown-linux-gnu`),
/// `CC` to the cross compiler and `ENVOL_CTEST_RUNNER` to the runner (e.g.
/// `qemu-aarch64 -cpu max`): the program is then linked `-static`, run
/// through the runner, and the sanitizer build is skipped.
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

    match &target {
        Some(t) => {
            let exe = ctest.join(format!("xts_test-{t}"));
            compile_c_test(&lib, &exe, &["-static"], &format!("C test build for {t}"));
            let runner = std::env::var("ENVOL_CTEST_RUNNER")
                .ok()
                .filter(|r| !r.trim().is_empty())
                .map(|_| "ENVOL_CTEST_RUNNER");
            run_c_test(&exe, runner, &format!("C test on {t}"));
        }
        None => {
            let exe = ctest.join("xts_test");
            compile_c_test(&lib, &exe, &[], "C test build");
            run_c_test(&exe, None, "C test");

            let exe = ctest.join("xts_test_asan");
            compile_c_test(
                &lib,
                &exe,
                &[
                    "-g",
                    "-fsanitize=address,undefined",
                    "-fno-omit-frame-pointer",
                    "-fno-sanitize-recover=all",
                ],
                "C test build (ASan + UBSan)",
            );
            run_c_test(&exe, None, "C test (ASan + UBSan)");
        }
    }
}
