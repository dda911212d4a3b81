//! The gate in front of what many threads use at once and one thread may
//! take away: an attached volume's keys (wiped when its lease is lost or
//! it detaches), and the C ABI's caller-allocated volume (rebuilt in place
//! on attach and detach).
//!
//! No lock on the way in: a user adds itself to an in-flight count and then
//! reads the state word; whoever takes the gate changes the state word
//! first and then waits for the count to drain. A sequentially consistent
//! fence sits between each side's write and read, so at least one of them
//! sees the other (the store-then-load pattern of Dekker's algorithm): a
//! user that got in is waited for, and a user that came too late leaves at
//! once. (Sequentially consistent accesses alone would do in the language's
//! model; the fences are what loom, which checks this protocol, models.) Waiting is
//! bounded by the work users do inside (one data call), never by a lock
//! held across a call into a key service.
//!
//! The protocol is model-checked with loom in `core/tests/loom_gate.rs`,
//! which compiles this very file against loom's atomics.

use core::cell::UnsafeCell;

use super::gate_atomics::{AtomicUsize, Ordering::SeqCst, fence, spin};

/// A state word and the users inside.
#[derive(Debug)]
pub struct Gate {
    state: AtomicUsize,
    inflight: AtomicUsize,
}

/// The state word while someone holds the gate to itself ("BUSY" in
/// ASCII: a value that memory nobody initialised is unlikely to hold).
pub const BUSY: usize = 0x4255_5359;

/// One user inside the gate; leaving is dropping it.
pub struct Pass<'g> {
    gate: &'g Gate,
    state: usize,
}

impl Pass<'_> {
    /// The state the user entered in.
    pub fn state(&self) -> usize {
        self.state
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.inflight.fetch_sub(1, SeqCst);
    }
}

impl Gate {
    /// A gate in state `state`.
    pub fn new(state: usize) -> Gate {
        Gate {
            state: AtomicUsize::new(state),
            inflight: AtomicUsize::new(0),
        }
    }

    /// The state word now (for diagnostics and single-owner paths).
    pub fn state(&self) -> usize {
        self.state.load(SeqCst)
    }

    /// Enters if the state word satisfies `allowed` (never while
    /// [`BUSY`]); otherwise returns the state found.
    pub fn enter(&self, allowed: impl Fn(usize) -> bool) -> Result<Pass<'_>, usize> {
        // States no user may enter are turned away without touching the
        // count (see `take_idle`).
        let seen = self.state.load(SeqCst);
        if seen == BUSY || !allowed(seen) {
            return Err(seen);
        }
        self.inflight.fetch_add(1, SeqCst);
        fence(SeqCst);
        let state = self.state.load(SeqCst);
        if state != BUSY && allowed(state) {
            Ok(Pass { gate: self, state })
        } else {
            self.inflight.fetch_sub(1, SeqCst);
            Err(state)
        }
    }

    /// Takes the gate from outside: waits while another holder has it, then
    /// sets [`BUSY`] if the state satisfies `from` and waits until every user
    /// has left. Returns the state it took over (give the gate back with
    /// [`Gate::release`]), or the state that did not satisfy `from`.
    pub fn take(&self, from: impl Fn(usize) -> bool) -> Result<usize, usize> {
        let taken = loop {
            let s = self.state.load(SeqCst);
            if s == BUSY {
                spin();
                continue;
            }
            if !from(s) {
                return Err(s);
            }
            if self.state.compare_exchange(s, BUSY, SeqCst, SeqCst).is_ok() {
                break s;
            }
        };
        fence(SeqCst);
        while self.inflight.load(SeqCst) != 0 {
            spin();
        }
        Ok(taken)
    }

    /// Takes the gate in a state no user may enter (`idle`): users never
    /// count themselves in then, so there is no one to wait for, and the
    /// count is reset (memory that was never a gate, such as a C struct
    /// that was not zeroed, may hold anything there).
    pub fn take_idle(&self, idle: impl Fn(usize) -> bool) -> Result<usize, usize> {
        let s = self.state.load(SeqCst);
        if s == BUSY || !idle(s) {
            return Err(s);
        }
        self.state.compare_exchange(s, BUSY, SeqCst, SeqCst)?;
        self.inflight.store(0, SeqCst);
        Ok(s)
    }

    /// Takes the gate from inside, with the caller's own pass: sets
    /// [`BUSY`] if the state is still the one the pass entered in, and waits
    /// until every other user has left. `false` if someone else changed the
    /// state first (the caller should just leave).
    pub fn take_inside(&self, pass: &Pass<'_>) -> bool {
        if self
            .state
            .compare_exchange(pass.state, BUSY, SeqCst, SeqCst)
            .is_err()
        {
            return false;
        }
        fence(SeqCst);
        while self.inflight.load(SeqCst) > 1 {
            spin();
        }
        true
    }

    /// Gives a taken gate back in state `state`.
    pub fn release(&self, state: usize) {
        self.state.store(state, SeqCst);
    }
}

/// Mutual exclusion on a gate, for what is rare and may wait for another
/// thread's key-service call: header updates and lease renewals (hosted
/// builds yield while waiting; bare-metal builds spin).
pub struct Mutex<T> {
    gate: Gate,
    value: UnsafeCell<T>,
}

// SAFETY: the gate admits one holder at a time, so `value` is only ever
// reached through one `&mut` (as for `std::sync::Mutex`).
unsafe impl<T: Send> Sync for Mutex<T> {}

/// Gives the gate back when the holder is done, even by unwinding.
struct Held<'a>(&'a Gate);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.release(FREE);
    }
}

const FREE: usize = 0;

impl<T> Mutex<T> {
    /// A free mutex holding `value`.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            gate: Gate::new(FREE),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with the value, waiting for any other holder first.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // Only `FREE` and `BUSY` ever occur, and `take` waits out `BUSY`.
        let _ = self.gate.take(|s| s == FREE);
        let _held = Held(&self.gate);
        // SAFETY: this thread holds the gate (`BUSY`) until `_held` drops,
        // so no other reference to the value exists meanwhile.
        f(unsafe { &mut *self.value.get() })
    }

    /// The value, through exclusive access.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// The value.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Mutex(..)")
    }
}
