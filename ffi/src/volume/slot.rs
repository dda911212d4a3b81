//! What lives inside an `envol_volume`: the gate and its states, the
//! value it guards (nothing, a detached `Volume` or an `AttachedVolume`),
//! and the moves between them — entering for a call, taking the gate for a
//! transition, moving the value out and back with its old bytes wiped.

use super::*;

/// Gate states of an `envol_volume` ("VOLD" and "VOLA" in ASCII); anything
/// else but `BUSY` means empty.
pub(crate) const DETACHED: usize = 0x564F_4C44;
pub(crate) const ATTACHED: usize = 0x564F_4C41;

/// The attached volume type of the C ABI.
pub(crate) type Attached = AttachedVolume<CallbackDevice, CallbackClock>;

/// The volume a live `envol_volume` holds; which field is valid is said by
/// the gate's state.
pub(super) union Inner {
    detached: ManuallyDrop<Volume<CallbackDevice>>,
    attached: ManuallyDrop<Attached>,
}

/// What the library keeps inside `envol_volume`.
#[repr(C)]
pub(crate) struct Slot {
    pub(super) gate: Gate,
    pub(crate) kms: envol_kms_callbacks,
    pub(super) lease: envol_lease,
    pub(super) inner: Inner,
    pub(crate) bounce_busy: AtomicBool,
    pub(crate) bounce: [u8; BOUNCE],
}

const _: () = assert!(size_of::<envol_volume>() == ENVOL_VOLUME_SIZE);
const _: () = assert!(align_of::<envol_volume>() == ENVOL_VOLUME_ALIGN);
const _: () = assert!(size_of::<Slot>() <= ENVOL_VOLUME_SIZE);
const _: () = assert!(align_of::<Slot>() <= ENVOL_VOLUME_ALIGN);

/// What a volume's state word says.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Empty,
    Detached,
    Attached,
    Busy,
}

pub(super) fn decode(s: usize) -> State {
    match s {
        DETACHED => State::Detached,
        ATTACHED => State::Attached,
        BUSY => State::Busy,
        _ => State::Empty,
    }
}

/// Checks `vol` for NULL and alignment.
pub(crate) fn slot_ptr(vol: *const envol_volume) -> Result<*mut Slot, envol_status> {
    if vol.is_null() {
        return Err(envol_status::ENVOL_ERR_NULL_POINTER);
    }
    if !(vol as usize).is_multiple_of(ENVOL_VOLUME_ALIGN) {
        return Err(envol_status::ENVOL_ERR_ALIGNMENT);
    }
    Ok(vol.cast_mut().cast())
}

/// The status for a call that found the volume in state `got` instead of
/// one it needs.
pub(crate) fn wrong_state(got: State) -> envol_status {
    match got {
        State::Empty => envol_status::ENVOL_ERR_NOT_INITIALIZED,
        State::Detached | State::Busy => envol_status::ENVOL_ERR_VOLUME_DETACHED,
        State::Attached => envol_status::ENVOL_ERR_VOLUME_ATTACHED,
    }
}

/// The gate of `slot`.
///
/// # Safety
/// `slot` from [`slot_ptr`] on an `envol_volume` the caller may read and
/// write (its gate words are atomics; C may hand us memory it never wrote,
/// which reads as an empty volume).
pub(crate) unsafe fn gate<'a>(slot: *const Slot) -> &'a Gate {
    // SAFETY: aligned and inside the caller's struct per the contract; the
    // gate's fields are atomics, valid for any bit pattern.
    unsafe { &(*slot).gate }
}

/// Enters `slot` for a call allowed in `states`.
///
/// # Safety
/// As for [`gate`], for as long as the pass lives.
pub(crate) unsafe fn enter<'a>(
    slot: *const Slot,
    states: &[State],
) -> Result<Pass<'a>, envol_status> {
    // SAFETY: forwarded contract.
    unsafe { gate(slot) }
        .enter(|s| states.contains(&decode(s)))
        .map_err(|s| wrong_state(decode(s)))
}

/// The attached volume of a slot its caller entered in state attached.
///
/// # Safety
/// `pass` entered `slot`'s gate in state attached: the value there is
/// live and nobody moves it until the pass is gone.
pub(crate) unsafe fn attached<'a>(slot: *const Slot, pass: &'a Pass<'_>) -> &'a Attached {
    debug_assert_eq!(pass.state(), ATTACHED);
    // SAFETY: the state says `attached` holds a valid value; `ManuallyDrop`
    // is `repr(transparent)`; shared use is what the value is built for.
    unsafe { &*(&raw const (*slot).inner.attached).cast::<Attached>() }
}

/// The detached volume of a slot its caller entered in state detached.
///
/// # Safety
/// As for [`attached`], in state detached.
pub(crate) unsafe fn detached<'a>(
    slot: *const Slot,
    pass: &'a Pass<'_>,
) -> &'a Volume<CallbackDevice> {
    debug_assert_eq!(pass.state(), DETACHED);
    // SAFETY: as for `attached`.
    unsafe { &*(&raw const (*slot).inner.detached).cast::<Volume<CallbackDevice>>() }
}

/// Zeroes every byte of `inner` (the value there must already have been
/// moved out or dropped).
///
/// # Safety
/// `slot` from [`slot_ptr`], held (gate `BUSY`) by the caller.
pub(super) unsafe fn wipe_inner(slot: *mut Slot) {
    // SAFETY: the bytes are the caller's to write; zeroes are a valid
    // `[u8; N]`, and nothing reads `inner` as a volume while the gate is
    // held. Volatile writes: the wipe is not optimised away.
    unsafe {
        zeroize::zeroize_flat_type((&raw mut (*slot).inner).cast::<[u8; size_of::<Inner>()]>());
    }
}

/// Takes out the value of a held slot that was in state `was`.
///
/// # Safety
/// `slot` held by the caller, having been in state `was` (detached or
/// attached), whose value is then moved out and the bytes wiped.
pub(super) unsafe fn take_value(slot: *mut Slot, was: State) -> Option<Either> {
    // SAFETY: the state said which field is valid; it is read out once and
    // its bytes wiped, so no second copy is ever used or dropped. The
    // attached engine's bytes left in the struct are among those wiped.
    unsafe {
        let v = match was {
            State::Detached => Either::Detached(ManuallyDrop::into_inner(
                (&raw const (*slot).inner.detached).read(),
            )),
            State::Attached => Either::Attached(ManuallyDrop::into_inner(
                (&raw const (*slot).inner.attached).read(),
            )),
            State::Empty | State::Busy => return None,
        };
        wipe_inner(slot);
        Some(v)
    }
}

/// A volume moved out of a slot (moved as a whole, never stored).
#[allow(clippy::large_enum_variant)]
pub(super) enum Either {
    Detached(Volume<CallbackDevice>),
    Attached(Attached),
}

/// Stores a value into a held slot and releases it in the matching state.
///
/// # Safety
/// `slot` held by the caller, its `inner` free (moved out or wiped).
pub(super) unsafe fn put_value(slot: *mut Slot, v: Either) {
    // SAFETY: the value is written before the state that makes it live.
    unsafe {
        wipe_inner(slot);
        let state = match v {
            Either::Detached(d) => {
                (&raw mut (*slot).inner.detached).write(ManuallyDrop::new(d));
                DETACHED
            }
            Either::Attached(a) => {
                (&raw mut (*slot).inner.attached).write(ManuallyDrop::new(a));
                ATTACHED
            }
        };
        gate(slot).release(state);
    }
}

/// Runs `f` on the value of `slot` holding it (gate taken from one of
/// `from`, waiting for the calls inside to leave); `f` gives back the
/// value to store (or none, leaving the struct empty) and the status.
///
/// # Safety
/// As for [`gate`]; `slot` writable.
pub(super) unsafe fn transition(
    slot: *mut Slot,
    from: &[State],
    f: impl FnOnce(Either) -> (Option<Either>, envol_status),
) -> envol_status {
    // SAFETY: forwarded contract.
    let was = match unsafe { gate(slot) }.take(|s| from.contains(&decode(s))) {
        Ok(s) => decode(s),
        Err(s) => return wrong_state(decode(s)),
    };
    // SAFETY: held, in state `was`.
    let Some(v) = (unsafe { take_value(slot, was) }) else {
        // SAFETY: held; nothing lives in it.
        unsafe { gate(slot).release(0) };
        return envol_status::ENVOL_ERR_INTERNAL;
    };
    let (back, status) = f(v);
    match back {
        // SAFETY: held, `inner` free.
        Some(v) => unsafe { put_value(slot, v) },
        // SAFETY: held; the value was consumed.
        None => unsafe { gate(slot).release(0) },
    }
    status
}

/// The lease settings stored in `slot`, as the core takes them.
///
/// # Safety
/// `slot` held by the caller.
pub(super) unsafe fn lease_of(slot: *const Slot) -> (LeaseConfig, CallbackClock) {
    // SAFETY: held by the caller; plain data.
    let l = unsafe { (&raw const (*slot).lease).read() };
    let renew = if l.renew_before_s == 0 {
        l.duration_s / 2
    } else {
        l.renew_before_s
    };
    let cfg = LeaseConfig {
        duration: l.duration_s,
        renew_before: renew,
        grace: l.grace_s,
    };
    let clock = CallbackClock {
        now: l.now,
        user: l.user,
    };
    (cfg, clock)
}

/// Whether `[p, p+len)` overlaps the struct at `slot`.
pub(crate) fn overlaps_struct(slot: *const Slot, p: *const u8, len: usize) -> bool {
    ranges_overlap(slot as usize, ENVOL_VOLUME_SIZE, p as usize, len)
}
