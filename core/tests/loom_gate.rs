//! The gate's protocol, model-checked with loom: `core/src/gate.rs`
//! compiled against loom's atomics explores every interleaving of users
//! entering and a taker closing the gate, and checks that no user is ever
//! inside while the taker holds it (what would let a data call read a key
//! being wiped, or C memory being rebuilt).

#[allow(dead_code, unreachable_pub)]
#[path = "../src/gate.rs"]
mod gate;

/// What `gate.rs` imports from its parent: loom's atomics.
mod gate_atomics {
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering, fence};

    pub(crate) fn spin() {
        loom::thread::yield_now();
    }
}

use gate::{BUSY, Gate};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};

const LIVE: usize = 1;
const WIPED: usize = 2;

/// One user enters while a taker (from outside) closes the gate: the user
/// either got in before (and the taker waited for it to leave) or is
/// turned away; the protected value is never seen half-wiped.
#[test]
fn a_user_and_an_outside_taker() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(LIVE));
        let key = Arc::new(AtomicUsize::new(42));
        let (g, k) = (gate.clone(), key.clone());
        let user = loom::thread::spawn(move || {
            if let Ok(pass) = g.enter(|s| s == LIVE) {
                assert_eq!(k.load(SeqCst), 42, "key read while being wiped");
                drop(pass);
            }
        });
        let taken = gate.take(|s| s == LIVE);
        assert_eq!(taken, Ok(LIVE));
        key.store(0, SeqCst);
        gate.release(WIPED);
        user.join().unwrap();
        assert!(gate.enter(|s| s == LIVE).is_err());
    });
}

/// Two users, one of which wipes from inside (a lease found past its
/// deadline) while the other is in a data call.
#[test]
fn a_user_wipes_from_inside_while_another_reads() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(LIVE));
        let key = Arc::new(AtomicUsize::new(42));
        let (g, k) = (gate.clone(), key.clone());
        let reader = loom::thread::spawn(move || {
            if let Ok(pass) = g.enter(|s| s == LIVE) {
                assert_eq!(k.load(SeqCst), 42);
                drop(pass);
            }
        });
        if let Ok(pass) = gate.enter(|s| s == LIVE)
            && gate.take_inside(&pass)
        {
            key.store(0, SeqCst);
            gate.release(WIPED);
        }
        reader.join().unwrap();
        assert_ne!(gate.state(), BUSY);
    });
}

/// Two takers (detach racing a wipe): they take turns, never both at once.
#[test]
fn two_takers_take_turns() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(LIVE));
        let holders = Arc::new(AtomicUsize::new(0));
        let spawn = |to: usize| {
            let (g, h) = (gate.clone(), holders.clone());
            loom::thread::spawn(move || {
                if g.take(|s| s == LIVE).is_ok() {
                    assert_eq!(h.fetch_add(1, SeqCst), 0, "two holders at once");
                    h.fetch_sub(1, SeqCst);
                    g.release(to);
                }
            })
        };
        let a = spawn(WIPED);
        let b = spawn(LIVE);
        a.join().unwrap();
        b.join().unwrap();
    });
}
