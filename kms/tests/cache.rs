//! The data-key cache: what it answers locally, what it never does, its
//! limits, and that a key it lets go of is wiped from memory.

#![allow(clippy::cast_possible_truncation)] // test data

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use envol::envelope::{Context, DataKey, MAX_BLOB};
use envol::kms::policy::Policy;
use envol::kms::{Clock, Kms, KmsError, LocalKms};
use envol::volume::Volume;
use envol::xts::KeySize;
use envol_kms::cache::{CacheClock, CacheLimits, CacheStats, CachingKms};

mod common;

/// Counts freed heap blocks that still hold a marked data key.
struct Scanner;

static MARK_SEEN_FREED: AtomicUsize = AtomicUsize::new(0);
static LAST_SIZE: AtomicUsize = AtomicUsize::new(0);
/// The marked key: 64 bytes no allocation holds by chance.
const MARK: [u8; 64] = {
    let mut m = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        m[i] = 0xc3 ^ (i as u8).wrapping_mul(29);
        i += 1;
    }
    m
};

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
        if block.len() >= 64 && block.windows(64).any(|w| w == MARK) {
            MARK_SEEN_FREED.fetch_add(1, Ordering::SeqCst);
            LAST_SIZE.store(layout.size(), Ordering::SeqCst);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Scanner = Scanner;

/// A manual clock.
#[derive(Clone, Default)]
struct Manual(Arc<AtomicU64>);
impl CacheClock for Manual {
    fn now(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}
impl Manual {
    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Counts what reaches the service behind the cache.
struct Counting<K> {
    inner: K,
    decrypts: Arc<Mutex<u64>>,
}

impl<K: Kms> Kms for Counting<K> {
    fn generate_data_key(
        &mut self,
        p: &str,
        k: &str,
        s: KeySize,
        c: &Context<'_>,
        o: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        self.inner.generate_data_key(p, k, s, c, o)
    }
    fn generate_data_key_without_plaintext(
        &mut self,
        p: &str,
        k: &str,
        s: KeySize,
        c: &Context<'_>,
        o: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner
            .generate_data_key_without_plaintext(p, k, s, c, o)
    }
    fn decrypt_data_key(
        &mut self,
        p: &str,
        b: &[u8],
        c: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        *self.decrypts.lock().unwrap() += 1;
        self.inner.decrypt_data_key(p, b, c)
    }
    fn re_encrypt(
        &mut self,
        p: &str,
        b: &[u8],
        sc: &Context<'_>,
        d: &str,
        dc: &Context<'_>,
        o: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner.re_encrypt(p, b, sc, d, dc, o)
    }
    fn encrypt(
        &mut self,
        p: &str,
        k: &str,
        c: &Context<'_>,
        t: &[u8],
        o: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner.encrypt(p, k, c, t, o)
    }
    fn decrypt(
        &mut self,
        p: &str,
        b: &[u8],
        c: &Context<'_>,
        o: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner.decrypt(p, b, c, o)
    }
}

struct Epoch;
impl Clock for Epoch {
    fn now(&self) -> u64 {
        1_800_000_000
    }
}

const POLICY: &str = r#"{"Statement":[
 {"Effect":"Allow","Principal":{"Envol":"hypervisor"},
  "Action":["kms:GenerateDataKey*","kms:Decrypt","kms:ReEncrypt*"]},
 {"Effect":"Allow","Principal":{"Envol":"operator"},"Action":"kms:*"}]}"#;

fn local() -> (Counting<LocalKms>, Arc<Mutex<u64>>) {
    let mut k = LocalKms::new(Box::new(envol::kms::OsEntropy), Box::new(Epoch), None);
    k.set_service_policy("operator", Policy::allow_all(&["operator"]))
        .unwrap();
    k.create_key("operator", "key-a", Policy::parse(POLICY).unwrap())
        .unwrap();
    let n = Arc::new(Mutex::new(0));
    (
        Counting {
            inner: k,
            decrypts: n.clone(),
        },
        n,
    )
}

fn limits(age_ms: u64, uses: u64, entries: usize) -> CacheLimits {
    CacheLimits {
        max_age: Duration::from_millis(age_ms),
        max_uses: uses,
        max_entries: entries,
    }
}

#[test]
fn repeated_attaches_are_answered_locally_within_the_limits() {
    let (inner, decrypts) = local();
    let clock = Manual::default();
    let mut kms = CachingKms::with_clock(inner, limits(1000, 4, 8), clock.clone()).unwrap();
    let dev = Volume::create(
        common::device(),
        &mut kms,
        "hypervisor",
        "key-a",
        common::params(1),
    )
    .unwrap()
    .detach()
    .map_err(|(_, e)| e)
    .unwrap()
    .into_device();
    let mut vol = Volume::open(dev).unwrap();
    for _ in 0..4 {
        vol = vol
            .attach(&mut kms, "hypervisor")
            .unwrap()
            .detach()
            .map_err(|(_, e)| e)
            .unwrap();
    }
    // One Decrypt filled the entry, three attaches used it: 4 uses in all.
    assert_eq!(*decrypts.lock().unwrap(), 1);
    assert_eq!(
        kms.stats(),
        CacheStats {
            hits: 3,
            misses: 1,
            expired: 0,
            evicted: 0
        }
    );
    // Used up: the fifth attach goes to the service again.
    vol = vol
        .attach(&mut kms, "hypervisor")
        .unwrap()
        .detach()
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(*decrypts.lock().unwrap(), 2);
    assert_eq!(kms.stats().expired, 1);
    // Too old: past max_age the service is asked again.
    clock.advance(999);
    vol = vol
        .attach(&mut kms, "hypervisor")
        .unwrap()
        .detach()
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(*decrypts.lock().unwrap(), 2);
    clock.advance(1);
    vol = vol
        .attach(&mut kms, "hypervisor")
        .unwrap()
        .detach()
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(*decrypts.lock().unwrap(), 3);

    // Another principal is never served from the cache: the service
    // decides, and this one may not decrypt.
    let (_, e) = vol.attach(&mut kms, "guest").unwrap_err();
    assert_eq!(e, envol::volume::VolumeError::Kms(KmsError::AccessDenied));
    assert_eq!(*decrypts.lock().unwrap(), 4);
}

#[test]
fn the_context_and_blob_are_part_of_the_key() {
    let (inner, decrypts) = local();
    let mut kms = CachingKms::new(inner, CacheLimits::default()).unwrap();
    let ctx = Context::new(&[("volume", "vol-1")]).unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let (dek, n) = kms
        .generate_data_key("hypervisor", "key-a", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    // generate is never cached: the first decrypt is a miss.
    let k = kms
        .decrypt_data_key("hypervisor", &blob[..n], &ctx)
        .unwrap();
    assert_eq!(k.as_bytes(), dek.as_bytes());
    let k = kms
        .decrypt_data_key("hypervisor", &blob[..n], &ctx)
        .unwrap();
    assert_eq!(k.as_bytes(), dek.as_bytes());
    assert_eq!(*decrypts.lock().unwrap(), 1);
    let other = Context::new(&[("volume", "vol-2")]).unwrap();
    assert_eq!(
        kms.decrypt_data_key("hypervisor", &blob[..n], &other).err(),
        Some(KmsError::InvalidCiphertext)
    );
    let mut edited = blob;
    edited[n - 1] ^= 1;
    assert_eq!(
        kms.decrypt_data_key("hypervisor", &edited[..n], &ctx).err(),
        Some(KmsError::InvalidCiphertext)
    );
    assert_eq!(*decrypts.lock().unwrap(), 3);
    assert_eq!(kms.len(), 1);
}

#[test]
fn least_recently_used_goes_first_and_limits_are_checked() {
    let (inner, decrypts) = local();
    let clock = Manual::default();
    let mut kms = CachingKms::with_clock(inner, limits(60_000, 100, 2), clock.clone()).unwrap();
    let ctx = |i: u8| format!("vol-{i}");
    let mut blobs = Vec::new();
    for i in 0..3u8 {
        let v = ctx(i);
        let c = Context::new(&[("volume", v.as_str())]).unwrap();
        let mut b = [0u8; MAX_BLOB];
        let (_, n) = kms
            .generate_data_key("hypervisor", "key-a", KeySize::Aes256, &c, &mut b)
            .unwrap();
        blobs.push(b[..n].to_vec());
    }
    let open = |kms: &mut CachingKms<_, _>, i: usize| {
        clock.advance(1);
        let v = ctx(i as u8);
        let c = Context::new(&[("volume", v.as_str())]).unwrap();
        kms.decrypt_data_key("hypervisor", &blobs[i], &c).unwrap();
    };
    open(&mut kms, 0);
    open(&mut kms, 1);
    open(&mut kms, 0); // 0 is now the most recent
    open(&mut kms, 2); // evicts 1
    assert_eq!(kms.stats().evicted, 1);
    assert_eq!(*decrypts.lock().unwrap(), 3);
    open(&mut kms, 0);
    assert_eq!(*decrypts.lock().unwrap(), 3);
    open(&mut kms, 1);
    assert_eq!(*decrypts.lock().unwrap(), 4);
    assert_eq!(kms.len(), 2);

    for bad in [
        limits(0, 1, 1),
        limits(1, 0, 1),
        limits(1, 1, 0),
        limits(1, 1, 65_537),
    ] {
        let (inner, _) = local();
        assert_eq!(CachingKms::new(inner, bad).err().map(|_| ()), Some(()));
    }
}

/// A service that hands out one marked key.
struct Marked;
impl Kms for Marked {
    fn generate_data_key(
        &mut self,
        _: &str,
        _: &str,
        _: KeySize,
        _: &Context<'_>,
        _: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        Err(KmsError::Unavailable)
    }
    fn generate_data_key_without_plaintext(
        &mut self,
        _: &str,
        _: &str,
        _: KeySize,
        _: &Context<'_>,
        _: &mut [u8],
    ) -> Result<usize, KmsError> {
        Err(KmsError::Unavailable)
    }
    fn decrypt_data_key(
        &mut self,
        _: &str,
        _: &[u8],
        _: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        DataKey::from_bytes(&MARK).map_err(|_| KmsError::Unavailable)
    }
    fn re_encrypt(
        &mut self,
        _: &str,
        _: &[u8],
        _: &Context<'_>,
        _: &str,
        _: &Context<'_>,
        _: &mut [u8],
    ) -> Result<usize, KmsError> {
        Err(KmsError::Unavailable)
    }
    fn encrypt(
        &mut self,
        _: &str,
        _: &str,
        _: &Context<'_>,
        _: &[u8],
        _: &mut [u8],
    ) -> Result<usize, KmsError> {
        Err(KmsError::Unavailable)
    }
    fn decrypt(
        &mut self,
        _: &str,
        _: &[u8],
        _: &Context<'_>,
        _: &mut [u8],
    ) -> Result<usize, KmsError> {
        Err(KmsError::Unavailable)
    }
}

#[test]
fn keys_are_wiped_when_evicted_expired_cleared_and_dropped() {
    let clock = Manual::default();
    let mut kms = CachingKms::with_clock(Marked, limits(10, 3, 2), clock.clone()).unwrap();
    let ctx = Context::empty();
    let before = MARK_SEEN_FREED.load(Ordering::SeqCst);
    // Fill, hit, evict (LRU), expire by uses, expire by age, clear, drop.
    let get = |kms: &mut CachingKms<Marked, Manual>, id: u8| {
        let k = kms.decrypt_data_key("p", &[id; 8], &ctx).unwrap();
        assert_eq!(k.as_bytes(), &MARK);
    };
    for id in [0, 0, 1, 2, 1, 1, 1] {
        get(&mut kms, id);
    }
    clock.advance(11);
    get(&mut kms, 2);
    kms.clear();
    get(&mut kms, 0);
    get(&mut kms, 1);
    let s = kms.stats();
    assert!(s.hits > 0 && s.evicted > 0 && s.expired > 0, "{s:?}");
    drop(kms);
    assert_eq!(
        MARK_SEEN_FREED.load(Ordering::SeqCst),
        before,
        "a freed heap block still held a data key ({} bytes)",
        LAST_SIZE.load(Ordering::SeqCst)
    );
}
