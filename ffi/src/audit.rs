//! The reference key service's audit trail from C (hosted builds): a
//! fail-closed sink callback that receives every event as one line before
//! the call it records takes effect, the in-memory window addressed by
//! sequence number, the chain's head for an operator to keep, and
//! verification of a saved trail against that head.
//!
//! Lines are the core's text form (`AuditEvent::to_line`), e.g.
//! `seq=3 time=1700000000 principal=mallory action=kms:Decrypt key=disk-key
//! context={volume=vol-1} outcome=ENVOL_ERR_ACCESS_DENIED prev=<64 hex>
//! hash=<64 hex>`: each carries the previous event's hash, so a file of
//! lines verifies later on its own, under the service's audit key.

use core::ffi::{c_char, c_int, c_void};
use std::boxed::Box;
use std::string::ToString;
use std::vec::Vec;

use envol::kms::audit::{AuditEvent, AuditHead, AuditSink, AuditSinkError, parse_lines};

use crate::boundary::{StrError, check_span, envol_status, guard, in_slice, in_str, try_status};
use crate::local_kms::{envol_local_kms, handle};

/// An audit sink: stores one event, `len` bytes of text at `line` (no line
/// ending; `line[len]` is a NUL), durably, and returns 0 — or anything
/// else if it could not, which makes the audited call fail with
/// `ENVOL_ERR_AUDIT_FAILED` and change nothing. It is called with the key
/// service's lock held (from whichever thread made the call), and must not
/// call back into that key service.
pub type envol_audit_sink_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, line: *const c_char, len: usize) -> c_int>;

/// A C sink as the core's `AuditSink`.
struct CallbackSink {
    f: unsafe extern "C" fn(user: *mut c_void, line: *const c_char, len: usize) -> c_int,
    user: *mut c_void,
}

// SAFETY: `envol_local_kms_set_audit_sink` documents that the sink may be
// called from any thread that uses the handle; the pointer is only passed
// back to the sink.
unsafe impl Send for CallbackSink {}

impl AuditSink for CallbackSink {
    fn record(&mut self, event: &AuditEvent) -> Result<(), AuditSinkError> {
        let mut line = event.to_line().into_bytes();
        let len = line.len();
        line.push(0);
        // SAFETY: the sink's contract (see `envol_audit_sink_fn`); `line` is
        // a live NUL-terminated buffer of `len` + 1 bytes.
        match unsafe { (self.f)(self.user, line.as_ptr().cast(), len) } {
            0 => Ok(()),
            _ => Err(AuditSinkError),
        }
    }
}

/// Sends every audit event of the handle to `sink` (with `user` as its
/// first argument) before the change it records is made; a sink that fails
/// makes the call fail with `ENVOL_ERR_AUDIT_FAILED`, changing nothing
/// (fail closed). A NULL `sink` removes the sink (events are then kept only
/// in the handle's in-memory window). The sink and `user` must stay valid,
/// and be callable from any thread that uses the handle, until replaced or
/// until the handle is freed.
///
/// # Safety
/// `kms` NULL or a live handle; `sink` NULL or a function keeping the
/// contract of `envol_audit_sink_fn`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_set_audit_sink(
    kms: *mut envol_local_kms,
    sink: envol_audit_sink_fn,
    user: *mut c_void,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let mut k = try_status!(unsafe { handle(kms) });
        match sink {
            Some(f) => k.set_audit_sink(Box::new(CallbackSink { f, user })),
            None => k.set_audit_sink(Box::new(envol::kms::audit::NullSink)),
        }
        envol_status::ENVOL_OK
    })
}

/// The number of events in the handle's in-memory window, or 0 for NULL:
/// the most recent ones (at most 65,536), the oldest at
/// `envol_local_kms_audit_range`'s `first_seq`. Older events went only to
/// the sink.
///
/// # Safety
/// `kms` NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_audit_len(kms: *const envol_local_kms) -> usize {
    guard!(0, {
        // SAFETY: the caller's contract.
        match unsafe { handle(kms) } {
            Ok(k) => k.audit_log().len(),
            Err(_) => 0,
        }
    })
}

/// The sequence numbers the in-memory window spans: events `*first_seq ..
/// *next_seq` are held (none when the two are equal); `*next_seq` is the
/// number the next event will carry. Sequence numbers never change as the
/// window moves.
///
/// # Safety
/// `kms` NULL or a live handle; `first_seq`, `next_seq` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_audit_range(
    kms: *const envol_local_kms,
    first_seq: *mut u64,
    next_seq: *mut u64,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let k = try_status!(unsafe { handle(kms) });
        if first_seq.is_null() || next_seq.is_null() {
            return envol_status::ENVOL_ERR_NULL_POINTER;
        }
        let next = k.audit_next_seq();
        let first = k.audit_log().front().map_or(next, |e| e.seq);
        // SAFETY: non-NULL and writable per the contract.
        unsafe {
            first_seq.write_unaligned(first);
            next_seq.write_unaligned(next);
        }
        envol_status::ENVOL_OK
    })
}

/// Writes `text` and its NUL to `buf` and its length to `*len`, or, when
/// `cap` is too small, the size needed (NUL included) to `*len` and
/// `ENVOL_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `buf` NULL (only with `cap` 0) or valid for `cap` writes; `len` writable.
unsafe fn text_out(text: &str, buf: *mut c_char, cap: usize, len: *mut usize) -> envol_status {
    let need = text.len() + 1;
    if need > cap {
        // SAFETY: writable per the contract.
        unsafe { len.write_unaligned(need) };
        return envol_status::ENVOL_ERR_BUFFER_TOO_SMALL;
    }
    // SAFETY: `buf` is non-NULL (`cap` >= `need` > 0) and valid for `cap`
    // writes; `text` is our own.
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
        len.write_unaligned(text.len());
    }
    envol_status::ENVOL_OK
}

/// Checks a (buffer, capacity, length) output triple.
fn text_args(buf: *mut c_char, cap: usize, len: *mut usize) -> Result<(), envol_status> {
    if len.is_null() || (buf.is_null() && cap != 0) {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    if !buf.is_null() {
        check_span(buf as usize, cap)?;
    }
    Ok(())
}

/// Writes audit event `seq` (one of the in-memory window, see
/// `envol_local_kms_audit_range`) as one NUL-terminated line to `buf` and
/// its length (without the NUL) to `*len` — the same line a sink receives.
/// A sequence number outside the window is `ENVOL_ERR_INVALID_ARGUMENT`.
///
/// Exception to "a failed call writes nothing": when `cap` is too small
/// the result is `ENVOL_ERR_BUFFER_TOO_SMALL` and `*len` is set to the
/// buffer size needed, NUL included (nothing is written to `buf`). `buf`
/// may be NULL when `cap` is 0, to ask for the size.
///
/// # Safety
/// `kms` NULL or a live handle; `buf` NULL or valid for `cap` writes;
/// `len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_audit_event_line(
    kms: *const envol_local_kms,
    seq: u64,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let k = try_status!(unsafe { handle(kms) });
        try_status!(text_args(buf, cap, len));
        let Some(event) = k.audit_event(seq) else {
            return envol_status::ENVOL_ERR_INVALID_ARGUMENT;
        };
        let line = event.to_line();
        // SAFETY: checked by `text_args`; the caller's contract.
        unsafe { text_out(&line, buf, cap, len) }
    })
}

/// Writes the chain's head — the newest event, as `seq=<n> hash=<64 hex>` —
/// to `buf` (NUL-terminated) and its length to `*len`; before any event,
/// the empty string. An operator keeps heads somewhere the service cannot
/// write, and later checks a saved trail against one with
/// `envol_local_kms_audit_verify_lines`: a trail cut before the head, or
/// rewritten up to it, fails. Sizes as for `envol_local_kms_audit_event_line`
/// (`ENVOL_AUDIT_HEAD_SIZE` always suffices).
///
/// # Safety
/// As for [`envol_local_kms_audit_event_line`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_audit_head(
    kms: *const envol_local_kms,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let k = try_status!(unsafe { handle(kms) });
        try_status!(text_args(buf, cap, len));
        let head = k.audit_head().map(|h| h.to_string()).unwrap_or_default();
        // SAFETY: checked by `text_args`; the caller's contract.
        unsafe { text_out(&head, buf, cap, len) }
    })
}

/// Size of a buffer that always holds an audit head and its NUL.
pub const ENVOL_AUDIT_HEAD_SIZE: usize = 96;

/// Checks the handle's in-memory window: consecutive sequence numbers,
/// each event linked to the one before and carrying the right MAC under
/// the service's audit key (and, for a window starting at event 0, a zero
/// first link). `ENVOL_ERR_AUDIT_FAILED` if it does not verify.
///
/// # Safety
/// `kms` NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_audit_verify(kms: *const envol_local_kms) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let k = try_status!(unsafe { handle(kms) });
        let log: Vec<AuditEvent> = k.audit_log().iter().cloned().collect();
        let from_genesis = log.first().is_some_and(|e| e.seq == 0);
        match k.verify_audit(&log, from_genesis, None) {
            Ok(()) => envol_status::ENVOL_OK,
            Err(_) => envol_status::ENVOL_ERR_AUDIT_FAILED,
        }
    })
}

/// Verifies a saved trail — `text_len` bytes at `text`, one line per event
/// as the sink received them, `\n`-separated — under this service's audit
/// key: consecutive sequence numbers, each line linked to the one before,
/// every MAC right; with `from_genesis` != 0 it must start at event 0. With
/// a `head` (a string from `envol_local_kms_audit_head`; NULL or "" for
/// none), the trail must also reach that event unchanged, so a trail cut at
/// its end or re-hashed is refused. `ENVOL_OK` if it verifies, else
/// `ENVOL_ERR_AUDIT_FAILED`; a head that does not parse is
/// `ENVOL_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `kms` NULL or a live handle; `text` NULL (only with `text_len` 0) or
/// valid for `text_len` reads; `head` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envol_local_kms_audit_verify_lines(
    kms: *const envol_local_kms,
    text: *const c_char,
    text_len: usize,
    head: *const c_char,
    from_genesis: c_int,
) -> envol_status {
    guard!(envol_status::ENVOL_ERR_INTERNAL, {
        // SAFETY: the caller's contract.
        let k = try_status!(unsafe { handle(kms) });
        // SAFETY: the caller's contract.
        let bytes = try_status!(unsafe { in_slice(text.cast::<u8>(), text_len) });
        // SAFETY: the caller's contract.
        let head = match unsafe { in_str(head, ENVOL_AUDIT_HEAD_SIZE) } {
            Err(StrError::Null) => None,
            Ok("") => None,
            Ok(h) => match h.parse::<AuditHead>() {
                Ok(h) => Some(h),
                Err(_) => return envol_status::ENVOL_ERR_INVALID_ARGUMENT,
            },
            Err(_) => return envol_status::ENVOL_ERR_INVALID_ARGUMENT,
        };
        let Ok(text) = core::str::from_utf8(bytes) else {
            return envol_status::ENVOL_ERR_AUDIT_FAILED;
        };
        let verified = parse_lines(text)
            .and_then(|events| k.verify_audit(&events, from_genesis != 0, head.as_ref()));
        match verified {
            Ok(()) => envol_status::ENVOL_OK,
            Err(_) => envol_status::ENVOL_ERR_AUDIT_FAILED,
        }
    })
}
