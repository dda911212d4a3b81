// Shared by kms/build.rs and ffi/build.rs (`include!`d): which outside
// services the tests can reach on this machine. A test that needs a missing
// one is compiled `#[ignore]` with the reason, so `cargo test` counts it as
// ignored, never as passed. With `CI` or `ENVOL_REQUIRE_SERVICES=1` nothing
// is ignored: a missing service then fails its tests.

fn services() {
    println!("cargo::rustc-check-cfg=cfg(envol_no_moto)");
    println!("cargo::rustc-check-cfg=cfg(envol_no_moto_endpoint)");
    println!("cargo::rustc-check-cfg=cfg(envol_no_softhsm)");
    println!("cargo::rustc-check-cfg=cfg(envol_no_nbd_tools)");
    println!("cargo::rustc-check-cfg=cfg(envol_no_pykmip)");
    for v in [
        "CI",
        "ENVOL_REQUIRE_SERVICES",
        "ENVOL_MOTO_ENDPOINT",
        "ENVOL_PKCS11_MODULE",
        "ENVOL_PYKMIP_SERVER",
        "PATH",
    ] {
        println!("cargo::rerun-if-env-changed={v}");
    }
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    if set("CI") || set("ENVOL_REQUIRE_SERVICES") {
        return;
    }
    let on_path = |exe: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(exe).is_file()))
    };
    // The kms tests start moto themselves when it is installed; the C
    // example's test needs a running one.
    if !set("ENVOL_MOTO_ENDPOINT") {
        println!("cargo::rustc-cfg=envol_no_moto_endpoint");
        if !on_path("moto_server") {
            println!("cargo::rustc-cfg=envol_no_moto");
        }
    }
    let module = std::env::var_os("ENVOL_PKCS11_MODULE")
        .unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into());
    if !std::path::Path::new(&module).is_file() {
        println!("cargo::rustc-cfg=envol_no_softhsm");
    }
    // The KMIP tests start PyKMIP's server with certificates `openssl` makes.
    let pykmip = std::env::var_os("ENVOL_PYKMIP_SERVER")
        .filter(|p| !p.is_empty())
        .is_some_and(|p| std::path::Path::new(&p).is_file())
        || on_path("pykmip-server");
    if !(pykmip && on_path("openssl")) {
        println!("cargo::rustc-cfg=envol_no_pykmip");
    }
    // The nbdkit plugin's tests: the server, its headers, the clients and
    // an independent AES-XTS (Python's `cryptography`).
    let header = std::path::Path::new("/usr/include/nbdkit-plugin.h").is_file();
    let tools = ["nbdkit", "nbdcopy", "qemu-img", "qemu-io", "python3"]
        .iter()
        .all(|t| on_path(t));
    if !(header && tools) {
        println!("cargo::rustc-cfg=envol_no_nbd_tools");
    }
}
