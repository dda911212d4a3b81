//! The in-memory block device (callbacks that fail where told to), and the
//! ops that set up and edit it.

use std::ffi::{c_int, c_void};
use std::mem::size_of;
use std::ptr::null;

use envol::header::SLOT_SIZE;
use envol_ffi::envol_block_device;

use super::args::{DevArg, DiskSize};
use super::buffers::Hold;
use super::ops::Op;
use super::{N_DISK, N_VOL, State};

pub(super) struct Disk {
    pub(super) bytes: Vec<u8>,
    /// One bit per callback call: set means that call fails.
    pub(super) mask: u64,
    pub(super) rc: c_int,
    /// Failed reads scribble the buffer, failed writes tear.
    pub(super) garbage: bool,
}

impl Disk {
    fn fault(&mut self) -> Option<c_int> {
        let f = self.mask & 1 == 1;
        self.mask >>= 1;
        f.then_some(if self.rc == 0 { 5 } else { self.rc })
    }

    fn range(&self, off: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let o = usize::try_from(off).ok()?;
        let end = o.checked_add(len)?;
        (end <= self.bytes.len()).then_some(o..end)
    }
}

const DEFAULT_DISK: usize = 64 * 1024;

unsafe extern "C" fn disk_read(user: *mut c_void, off: u64, buf: *mut u8, len: usize) -> c_int {
    // SAFETY: `user` is a live `Disk` reached only through this pointer
    // while a call runs; `buf` is valid for `len` writes (the contract).
    unsafe {
        let d = &mut *user.cast::<Disk>();
        if let Some(rc) = d.fault() {
            if d.garbage {
                std::ptr::write_bytes(buf, 0xdd, len);
            }
            return rc;
        }
        let Some(r) = d.range(off, len) else {
            return 22;
        };
        std::ptr::copy_nonoverlapping(d.bytes[r].as_ptr(), buf, len);
        0
    }
}

unsafe extern "C" fn disk_write(user: *mut c_void, off: u64, buf: *const u8, len: usize) -> c_int {
    // SAFETY: as for `disk_read`; `buf` is valid for `len` reads.
    unsafe {
        let d = &mut *user.cast::<Disk>();
        let Some(r) = d.range(off, len) else {
            return 22;
        };
        if let Some(rc) = d.fault() {
            if d.garbage {
                // A torn write: the first half lands.
                let half = len / 2;
                d.bytes[r.start..r.start + half]
                    .copy_from_slice(std::slice::from_raw_parts(buf, half));
            }
            return rc;
        }
        d.bytes[r].copy_from_slice(std::slice::from_raw_parts(buf, len));
        0
    }
}

unsafe extern "C" fn disk_flush(user: *mut c_void) -> c_int {
    // SAFETY: as for `disk_read`.
    unsafe {
        let d = &mut *user.cast::<Disk>();
        d.fault().unwrap_or(0)
    }
}

impl State {
    /// Runs a block-device op.
    pub(super) fn run_disk(&mut self, op: &Op) {
        match op {
            Op::DiskSetup { disk, size } => {
                let n = match size {
                    DiskSize::Default => DEFAULT_DISK,
                    DiskSize::Small => 16 * 1024,
                    DiskSize::Big => 136 * 1024,
                    DiskSize::Mib => (1 << 20) + 64 * 1024,
                    DiskSize::Raw(r) => (*r as usize) % (256 * 1024),
                };
                let d = self.disk(usize::from(*disk));
                d.bytes.resize(n.max(2 * SLOT_SIZE), 0);
            }
            Op::DiskEdit { disk, pos, bytes } => {
                let d = self.disk(usize::from(*disk));
                let n = d.bytes.len();
                let start = (*pos as usize) % n;
                for (j, b) in bytes.iter().take(64).enumerate() {
                    d.bytes[(start + j) % n] = *b;
                }
                // Data the harness knew is gone.
                for v in 0..N_VOL {
                    if self.vrec[v].disk == usize::from(*disk) % N_DISK {
                        self.vrec[v].header_dek = None;
                    }
                }
            }
            Op::DiskFaults {
                disk,
                mask,
                rc,
                garbage,
            } => {
                let d = self.disk(usize::from(*disk));
                d.mask = *mask;
                d.rc = *rc;
                d.garbage = *garbage;
            }
            Op::DiskPutSlot { disk, b, slot } => {
                if let Some(s) = self.slot(slot) {
                    let d = self.disk(usize::from(*disk));
                    let o = if *b { SLOT_SIZE } else { 0 };
                    d.bytes[o..o + SLOT_SIZE].copy_from_slice(&s);
                }
            }
            _ => unreachable!("not a disk op: {op:?}"),
        }
    }

    pub(super) fn disk(&mut self, i: usize) -> &mut Disk {
        // SAFETY: as for `fake` (fake_kms.rs).
        let d = unsafe { &mut *self.disks[i % N_DISK] };
        if d.bytes.is_empty() {
            d.bytes = vec![0; DEFAULT_DISK];
        }
        d
    }

    pub(super) fn dev_table(
        &mut self,
        a: DevArg,
        hold: &mut Hold,
    ) -> (*const envol_block_device, usize) {
        let i = usize::from(a.disk) % N_DISK;
        self.disk(i);
        if a.null {
            return (null(), i);
        }
        let t = envol_block_device {
            user: self.disks[i].cast(),
            read_at: (a.drop & 1 == 0).then_some(disk_read as _),
            write_at: (a.drop & 2 == 0).then_some(disk_write as _),
            flush: (a.drop & 4 == 0).then_some(disk_flush as _),
        };
        let m = usize::from(a.misalign % 8);
        let mut raw = vec![0u8; size_of::<envol_block_device>() + 16];
        // SAFETY: inside `raw`.
        unsafe {
            raw.as_mut_ptr()
                .add(m)
                .cast::<envol_block_device>()
                .write_unaligned(t)
        };
        let p = hold.keep(raw);
        // SAFETY: inside the kept buffer.
        (unsafe { p.add(m) }.cast_const().cast(), i)
    }
}
