use core::ffi::{c_char, c_int, c_void};

use crate::boundary::envol_status;
use crate::kms::envol_kms_callbacks;
use crate::local_kms::{
    envol_local_kms_callbacks, envol_local_kms_create_key, envol_local_kms_free,
    envol_local_kms_new, envol_local_kms_set_service_policy,
};
use crate::volume::{
    ENVOL_VOLUME_SIZE, envol_block_device, envol_volume, envol_volume_close, envol_volume_create,
    envol_volume_info, envol_volume_params,
};
use crate::xts::{
    ENVOL_XTS_SIZE, envol_xts, envol_xts_decrypt_unit, envol_xts_encrypt_sectors, envol_xts_init,
    envol_xts_wipe,
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
unsafe extern "C" fn write_at(user: *mut c_void, off: u64, buf: *const u8, len: usize) -> c_int {
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
