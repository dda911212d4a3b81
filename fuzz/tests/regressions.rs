//! Replays every committed seed and every input that ever crashed a target
//! (`fuzz/regressions/<target>/*`, `fuzz/corpus/<target>/*`) through the same
//! harness functions, on the stable toolchain: `cargo test` in `fuzz/`.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            f(&data);
            n += 1;
        }
    }
    // Also a few fixed shapes every target must survive.
    for data in [
        &b""[..],
        &[0u8; 1][..],
        &[0xffu8; 4096][..],
        b"ENVOLHDR",
        b"EVWK\x01\x01",
    ] {
        f(data);
    }
    n
}

macro_rules! targets {
    ($($t:ident),*) => {$(
        #[test]
        fn $t() {
            let n = replay(stringify!($t), envol_fuzz::$t);
            println!("{}: replayed {n} inputs", stringify!($t));
        }
    )*};
}

targets!(
    header_parse,
    header_parse_fixed,
    blob_parse,
    context_encode,
    policy_parse,
    sealed_store,
    audit_verify,
    xts_diff,
    volume_attach,
    ffi_calls,
    kmip_ttlv
);

#[test]
#[ignore = "rewrites the committed seed corpora"]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let ffi = envol_fuzz::ffi_calls_seeds()
        .into_iter()
        .map(|(name, bytes, _)| ("ffi_calls", name, bytes));
    for (target, name, bytes) in envol_fuzz::seeds().into_iter().chain(ffi) {
        let d = root.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("seed-{name}")), bytes).unwrap();
    }
}
