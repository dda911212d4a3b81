//! The `ffi_calls` harness: arbitrary sequences of C ABI calls (the
//! `envol_*` functions of `ffi/`, linked as an rlib through
//! `ffi-shadow/`) with arbitrary arguments — lengths, sector sizes, NULL
//! and misaligned pointers, overlapping and in-place buffers, wiped,
//! never-initialised and scribbled-on contexts, unknown enum values, key
//! services and block devices that fail or answer nonsense.
//!
//! Properties checked after every call:
//! - it returns a status (never `ENVOL_ERR_INTERNAL`, which is a caught
//!   panic) and ASan sees no bad access;
//! - on a non-OK status every output is byte-for-byte untouched (outputs
//!   are filled with a canary pattern first; the documented exceptions —
//!   the needed size on `ENVOL_ERR_BUFFER_TOO_SMALL` from seal/audit-line,
//!   device data on `ENVOL_ERR_IO` from volume reads — are allowed exactly);
//! - nothing is ever written past a buffer's stated capacity;
//! - real results: XTS through the ABI equals `envol::xts::Xts` (soft) for
//!   the same key, decrypt inverts encrypt, acceptance of keys, lengths and
//!   sector runs agrees with the core checks, envelope seal equals the core
//!   seal and opens again, header parse/check/build agree with the core
//!   parser, volume reads are the XTS decryption of the device bytes and
//!   return what was written, unwrapped keys are the ones wrapped, the
//!   volume state word agrees with the calls made, the audit chain verifies.
//!
//! Everything the library may keep a pointer to (device and key-service
//! `user` data, local key-service handles) outlives its users: volumes are
//! closed before the handle their table names is freed.
//!
//! Layout: this file is the driver. It decodes an input into `Op`s
//! (`decode`), keeps the harness `State`, and hands each op to the file of
//! its area (`run_op`):
//! - `ops.rs`: the `Op` enum (its variant order is the input encoding);
//!   `args.rs`: the argument types and how bytes decode to them;
//! - `buffers.rs`: canary-filled outputs and the memory one call's
//!   arguments point into; `values.rs`: the parameters, keys, blobs and
//!   header slots arguments turn into;
//! - `engine.rs` (XTS contexts, `Misc`), `envelope.rs`, `headers.rs`;
//! - `kms.rs` (the local key service), `audit.rs` (its audit log and
//!   sinks), `fake_kms.rs` (a scriptable key service that fails or lies);
//! - `volumes.rs` (lifecycle), `volume_io.rs` (data), `leases.rs`, and
//!   `disk.rs` (the block device under them);
//! - `seeds.rs`: the committed seed inputs, checked by `tests.rs`.
#![allow(
    clippy::too_many_arguments,
    clippy::large_enum_variant,
    clippy::type_complexity
)]

mod args;
mod audit;
mod buffers;
mod disk;
mod engine;
mod envelope;
mod fake_kms;
mod headers;
mod kms;
mod leases;
mod ops;
mod seeds;
#[cfg(test)]
mod tests;
mod values;
mod volume_io;
mod volumes;

pub use seeds::seed_inputs;

use std::collections::VecDeque;
use std::ffi::CStr;
use std::ptr::null_mut;

use arbitrary::{Arbitrary, Unstructured};
use envol_ffi::{
    ENVOL_VOLUME_SIZE, ENVOL_XTS_SIZE, envol_local_kms, envol_status, envol_status_arg,
    envol_volume_params,
};

use args::POLICIES;
use audit::Sink;
use disk::Disk;
use engine::XState;
use fake_kms::Fake;
use kms::Svc;
use leases::CLOCK_START;
use ops::Op;
use volumes::{VState, VolRec};

/// Most calls one input makes.
const MAX_OPS: usize = 64;
/// Largest caller buffer (data, outputs) one call gets.
const MAX_BUF: usize = 64 * 1024;
/// Bytes after every output buffer that must never change.
const SLACK: usize = 32;
/// XTS contexts, volumes, local key-service handles, disks.
const N_CTX: usize = 3;
const N_VOL: usize = 2;
const N_KMS: usize = 3;
const N_DISK: usize = 2;
/// Pools of values earlier calls produced.
const POOL: usize = 8;

const OK: envol_status = envol_status::ENVOL_OK;

/// 64-byte aligned room for the XTS contexts, plus room to misalign.
#[repr(C, align(64))]
struct XtsArena([u8; N_CTX * ENVOL_XTS_SIZE + 64]);

/// One `envol_volume` plus room to misalign.
#[repr(C, align(64))]
struct VolBox([u8; ENVOL_VOLUME_SIZE + 64]);

/// A blob an earlier call produced, with its data key when known.
#[derive(Clone)]
struct PoolBlob {
    bytes: Vec<u8>,
    dek: Option<Vec<u8>>,
}

/// Room for caller data: two maximal buffers side by side.
const IO_ARENA: usize = 2 * MAX_BUF + 256;

struct State {
    xts: Box<XtsArena>,
    xst: [XState; N_CTX],
    vols: Vec<Box<VolBox>>,
    vrec: [VolRec; N_VOL],
    kms: [*mut envol_local_kms; N_KMS],
    fake: *mut Fake,
    disks: [*mut Disk; N_DISK],
    io: Vec<u8>,
    blobs: Vec<PoolBlob>,
    deks: Vec<Vec<u8>>,
    params: Vec<envol_volume_params>,
    built: Vec<Vec<u8>>,
    grants: Vec<Vec<u8>>,
    store: Option<Vec<u8>>,
    /// The lease clock (seconds) and the audit sink of each handle slot.
    clock: *mut u64,
    sinks: [*mut Sink; N_KMS],
}

/// The `i`-th newest entry of a pool (0: the last one pushed).
fn newest<T>(pool: &[T], i: u8) -> Option<&T> {
    let n = pool.len();
    (n > 0).then(|| &pool[n - 1 - usize::from(i) % n])
}

fn push_pool<T>(pool: &mut Vec<T>, v: T) {
    if pool.len() >= POOL {
        pool.remove(0);
    }
    pool.push(v);
}

/// Every status a call returns goes through here: a known value, never a
/// caught panic, and its name is the stable one.
fn st(s: envol_status) -> envol_status {
    if trace() {
        eprintln!("    -> {s:?}");
    }
    assert_ne!(
        s,
        envol_status::ENVOL_ERR_INTERNAL,
        "a bug caught at the boundary"
    );
    let name = unsafe { CStr::from_ptr(envol_ffi::envol_status_name(envol_status_arg(s as u32))) };
    assert_eq!(name.to_str().ok(), Some(format!("{s:?}").as_str()));
    s
}

impl State {
    fn new() -> State {
        let fake = Box::into_raw(Box::new(Fake {
            script: VecDeque::new(),
            counter: 0,
            last_gen: None,
            last_dec: None,
        }));
        let disk = || {
            Box::into_raw(Box::new(Disk {
                bytes: Vec::new(),
                mask: 0,
                rc: 5,
                garbage: false,
            }))
        };
        let rec = VolRec {
            state: VState::Empty,
            disk: 0,
            svc: Svc::None,
            params: None,
            dek: None,
            header_dek: None,
            lease: None,
            wiped: false,
        };
        let sink = || {
            Box::into_raw(Box::new(Sink {
                installed: false,
                fail: false,
                lines: Vec::new(),
            }))
        };
        State {
            clock: Box::into_raw(Box::new(CLOCK_START)),
            sinks: [sink(), sink(), sink()],
            xts: Box::new(XtsArena([0; N_CTX * ENVOL_XTS_SIZE + 64])),
            xst: [XState::Dead, XState::Dead, XState::Dead],
            vols: Vec::new(),
            vrec: [rec.clone(), rec],
            kms: [null_mut(); N_KMS],
            fake,
            disks: [disk(), disk()],
            io: vec![0; IO_ARENA],
            blobs: Vec::new(),
            deks: Vec::new(),
            params: Vec::new(),
            built: Vec::new(),
            grants: Vec::new(),
            store: None,
        }
    }

    /// Every input starts with local handle 0 holding keys `k1` and `k2`
    /// that anyone may use, so volumes can be made at once.
    fn setup(&mut self) {
        let mut h = null_mut();
        // SAFETY: a writable handle pointer, then the live handle and
        // NUL-terminated strings.
        unsafe {
            assert_eq!(st(envol_ffi::envol_local_kms_new(&mut h)), OK);
            let policy = std::ffi::CString::new(POLICIES[0]).expect("no NUL");
            let s =
                envol_ffi::envol_local_kms_set_service_policy(h, c"op".as_ptr(), policy.as_ptr());
            assert_eq!(st(s), OK);
            for id in [c"k1", c"k2"] {
                let policy = std::ffi::CString::new(POLICIES[0]).expect("no NUL");
                let s = envol_ffi::envol_local_kms_create_key(
                    h,
                    c"op".as_ptr(),
                    id.as_ptr(),
                    policy.as_ptr(),
                );
                assert_eq!(st(s), OK);
            }
        }
        self.kms[0] = h;
    }

    fn run(&mut self, op: &Op) {
        let failing = self.failing_sinks();
        self.run_op(op);
        // A failing sink makes every audited call fail and change nothing:
        // no event is ever added behind its back.
        for (i, h, next) in failing {
            if self.kms[i] != h || !self.sink(i).fail {
                continue;
            }
            let (mut first, mut now) = (0u64, 0u64);
            // SAFETY: a live handle; writable outputs (as in `failing_sinks`).
            let r = st(unsafe { envol_ffi::envol_local_kms_audit_range(h, &mut first, &mut now) });
            assert_eq!(r, OK);
            assert_eq!(now, next, "an event was recorded past a failing sink");
        }
    }

    /// Hands one op to the file of its area, whose `run_*` matches only its
    /// own ops (a new op needs a line here and an arm there).
    fn run_op(&mut self, op: &Op) {
        match op {
            Op::KmsNew { .. }
            | Op::KmsCreateKey { .. }
            | Op::KmsFree { .. }
            | Op::KmsSeal { .. }
            | Op::KmsUnseal { .. }
            | Op::KmsPutPolicy { .. }
            | Op::KmsManage { .. }
            | Op::KmsDescribe { .. }
            | Op::KmsCreateGrant { .. }
            | Op::KmsGrantEnd { .. }
            | Op::KmsCount { .. }
            | Op::KmsGenerate { .. }
            | Op::KmsDecrypt { .. }
            | Op::KmsReEncrypt { .. }
            | Op::KmsCallbacks { .. }
            | Op::KmsServicePolicy { .. }
            | Op::KmsForgetVolume { .. } => self.run_kms(op),
            Op::KmsAudit { .. }
            | Op::KmsAuditHead { .. }
            | Op::KmsAuditVerifyLines { .. }
            | Op::KmsAuditSink { .. } => self.run_audit(op),
            Op::FakeScript { .. } => self.run_fake(op),
            Op::XtsInit { .. }
            | Op::XtsData { .. }
            | Op::XtsWipe { .. }
            | Op::XtsBackend { .. }
            | Op::XtsScribble { .. }
            | Op::XtsInitFromBlob { .. }
            | Op::Misc { .. } => self.run_engine(op),
            Op::EnvelopeSeal { .. } | Op::EnvelopeOpen { .. } => self.run_envelope(op),
            Op::HeaderCheck { .. }
            | Op::HeaderParse { .. }
            | Op::HeaderContext { .. }
            | Op::HeaderUnwrap { .. }
            | Op::HeaderBuild { .. }
            | Op::HeaderUnwrapExpect { .. } => self.run_headers(op),
            Op::DiskSetup { .. }
            | Op::DiskEdit { .. }
            | Op::DiskFaults { .. }
            | Op::DiskPutSlot { .. } => self.run_disk(op),
            Op::VolCreate { .. }
            | Op::VolDetach { .. }
            | Op::VolAttach { .. }
            | Op::VolOpen { .. }
            | Op::VolClose { .. }
            | Op::VolFlush { .. }
            | Op::VolRewrap { .. }
            | Op::VolRetire { .. }
            | Op::VolInfo { .. }
            | Op::VolBackend { .. }
            | Op::VolScribble { .. }
            | Op::VolOpenExpect { .. }
            | Op::VolOverwrite { .. } => self.run_volumes(op),
            Op::VolWrite { .. } | Op::VolRead { .. } | Op::VolCrypt { .. } => {
                self.run_volume_io(op)
            }
            Op::LeaseSet { .. } | Op::LeaseAdvance { .. } | Op::VolMaintain { .. } => {
                self.run_leases(op)
            }
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        for i in 0..self.vols.len() {
            let base = self.vol_base(i);
            // SAFETY: our aligned volume struct; its tables' users are alive.
            unsafe { envol_ffi::envol_volume_close(base.cast()) };
        }
        for i in 0..N_CTX {
            // SAFETY: our aligned context.
            unsafe {
                envol_ffi::envol_xts_wipe(self.xts.0.as_mut_ptr().add(i * ENVOL_XTS_SIZE).cast())
            };
        }
        for h in self.kms {
            // SAFETY: NULL or a live handle, freed once.
            unsafe { envol_ffi::envol_local_kms_free(h) };
        }
        // SAFETY: made by `Box::into_raw`, nothing refers to them any more.
        unsafe {
            drop(Box::from_raw(self.fake));
            for d in self.disks {
                drop(Box::from_raw(d));
            }
            drop(Box::from_raw(self.clock));
            for k in self.sinks {
                drop(Box::from_raw(k));
            }
        }
    }
}

/// The ops an input encodes: at most [`MAX_OPS`].
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// Arbitrary sequences of C ABI calls: see the module documentation.
pub fn ffi_calls(data: &[u8]) {
    let ops = decode(data);
    let mut state = State::new();
    state.setup();
    for op in &ops {
        if trace() {
            eprintln!("{op:?}");
        }
        state.run(op);
    }
}

/// `ENVOL_FUZZ_TRACE=1` prints every op and status (to read a crash input).
fn trace() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ENVOL_FUZZ_TRACE").is_some())
}
