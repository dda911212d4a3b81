use core::ffi::{c_char, c_void};
use std::ffi::CString;

use envol::envelope::{Context, MAX_BLOB};
use envol::kms::{Kms, KmsError};
use envol::xts::KeySize;

use crate::boundary::{StrError, envol_status, envol_status_arg, in_str, kms_result};
use crate::kms::{CallbackKms, envol_kms_callbacks, envol_kv};
use crate::local_kms::{
    envol_local_kms, envol_local_kms_callbacks, envol_local_kms_create_key, envol_local_kms_free,
    envol_local_kms_new, envol_local_kms_set_service_policy,
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
            let st = envol_local_kms_create_key(h, c"op".as_ptr(), id.as_ptr(), policy.as_ptr());
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
