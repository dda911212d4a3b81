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
unsafe extern "C" fn disk_write(user: *mut c_void, off: u64, buf: *const u8, len: usize) -> c_int {
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
