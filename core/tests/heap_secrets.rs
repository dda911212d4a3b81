//! Key material never stays behind in freed heap memory (issue #13, item 8):
//! rotation growing the list of backing versions, sealing and unsealing the
//! store, and dropping the service. Every 32-byte random draw (master keys,
//! the audit key) is a marked pattern; the global allocator scans each
//! block as it is freed.

#![allow(clippy::cast_possible_truncation)] // test data

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use envol::envelope::{Context, MAX_BLOB};
use envol::kms::policy::Policy;
use envol::kms::{Entropy, Kms, KmsError, LocalKms};
use envol::xts::KeySize;

mod common;
use common::{FakeClock, LEAST_PRIVILEGE};

const MARK: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        m[i] = 0x5c ^ (i as u8).wrapping_mul(37);
        i += 1;
    }
    m
};

static SEEN: AtomicUsize = AtomicUsize::new(0);

struct Scanner;

// SAFETY: forwards to the system allocator; the scan only reads the block
// being freed, which is still owned here until `System.dealloc`.
unsafe impl GlobalAlloc for Scanner {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is valid for `layout.size()` reads until freed.
        let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
        if block.len() >= 32 && block.windows(32).any(|w| w == MARK) {
            SEEN.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Scanner = Scanner;

/// Marked bytes for every 32-byte draw, a counter for the rest.
struct Marked(u64);

impl Entropy for Marked {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), KmsError> {
        if buf.len() == 32 {
            buf.copy_from_slice(&MARK);
        } else {
            for b in buf.iter_mut() {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
                *b = (self.0 >> 56) as u8;
            }
        }
        Ok(())
    }
}

#[test]
fn rotation_sealing_and_drop_leave_no_key_bytes_in_freed_memory() {
    let t = Arc::new(AtomicU64::new(1_700_000_000));
    let mut kms = LocalKms::new(Box::new(Marked(1)), Box::new(FakeClock(t.clone())), None);
    kms.set_service_policy("operator", Policy::allow_all(&["operator"]))
        .unwrap();
    for i in 0..20 {
        let id = format!("key-{i}");
        kms.create_key("operator", &id, Policy::parse(LEAST_PRIVILEGE).unwrap())
            .unwrap();
        // 40 versions: the list of versions reallocates several times.
        for _ in 0..40 {
            kms.rotate_key_on_demand("admin", &id).unwrap();
        }
    }
    let ctx = Context::new(&[("volume", "vol-1")]).unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let n = kms
        .generate_data_key_without_plaintext(
            "hypervisor",
            "key-3",
            KeySize::Aes256,
            &ctx,
            &mut blob,
        )
        .unwrap();
    let root = [0x42u8; 32];
    let sealed = kms.seal(&root).unwrap();
    drop(kms);
    let mut back = LocalKms::unseal(
        &root,
        &sealed,
        Box::new(Marked(2)),
        Box::new(FakeClock(t)),
        None,
    )
    .unwrap();
    back.decrypt_data_key("hypervisor", &blob[..n], &ctx)
        .unwrap();
    back.rotate_key_on_demand("admin", "key-3").unwrap();
    let again = back.seal(&root).unwrap();
    drop(back);
    drop((sealed, again));
    assert_eq!(
        SEEN.load(Ordering::SeqCst),
        0,
        "a freed heap block still held master key material"
    );
}
