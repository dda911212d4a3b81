//! A bounded cache of unwrapped data keys in front of any key service.
//!
//! When a host boots hundreds of volumes, or a volume is detached and
//! attached again in a loop, every attach is one Decrypt at the key service.
//! [`CachingKms`] keeps the data keys it unwrapped for a bounded time, a
//! bounded number of uses and a bounded number of entries, so repeated
//! attaches of the same volume are answered locally.
//!
//! What it caches, and what it never does:
//! - only `decrypt_data_key` answers, keyed by the principal, the exact blob
//!   and the exact encryption context: a hit is an answer the service gave
//!   that same principal for that same request less than `max_age` ago;
//! - never `generate_data_key` (every volume gets its own fresh key) nor
//!   re-encrypt, encrypt or decrypt of secrets, which go straight through;
//! - a revoked grant or a disabled key therefore takes effect for cached
//!   keys only when their entry expires: `max_age` is that window.
//!
//! Entries hold the data key in a zeroizing [`DataKey`]: they are wiped
//! when they expire, are used up, are evicted (least recently used first),
//! on [`CachingKms::clear`] and when the cache is dropped. The cache is off
//! unless a caller wraps a service in it; its limits are logged when it is
//! made.

use std::fmt;
use std::time::{Duration, Instant};

use envol::envelope::{Context, DataKey, MAX_CONTEXT_ENCODED};
use envol::kms::{Kms, KmsError};
use envol::xts::KeySize;

/// Most entries a cache may be configured to hold.
pub const MAX_ENTRIES_LIMIT: usize = 65_536;

/// How long, how often and how many data keys stay cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// An entry older than this is wiped instead of used.
    pub max_age: Duration,
    /// An entry is wiped after serving this many attaches (the miss that
    /// filled it counts as the first).
    pub max_uses: u64,
    /// At most this many keys are held; the least recently used goes first.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    /// Five minutes, 1000 uses, 256 keys.
    fn default() -> Self {
        CacheLimits {
            max_age: Duration::from_secs(300),
            max_uses: 1000,
            max_entries: 256,
        }
    }
}

impl CacheLimits {
    /// Checks the limits: every one non-zero, `max_entries` at most
    /// [`MAX_ENTRIES_LIMIT`].
    pub fn check(&self) -> Result<(), KmsError> {
        if self.max_age.is_zero()
            || self.max_uses == 0
            || self.max_entries == 0
            || self.max_entries > MAX_ENTRIES_LIMIT
        {
            return Err(KmsError::InvalidArgument);
        }
        Ok(())
    }
}

/// Counters since the cache was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Attaches answered from the cache.
    pub hits: u64,
    /// Attaches that went to the service.
    pub misses: u64,
    /// Entries wiped because they were too old or used up.
    pub expired: u64,
    /// Entries wiped to make room.
    pub evicted: u64,
}

/// A monotonic time source, replaceable for tests.
pub trait CacheClock {
    /// Time since an arbitrary fixed start.
    fn now(&self) -> Duration;
}

/// [`Instant`]-based time.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl CacheClock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

struct Entry {
    principal: String,
    blob: Vec<u8>,
    context: Vec<u8>,
    // Boxed so that moving entries (eviction, `retain`) moves a pointer and
    // leaves no stale copy of the key in the vector's spare capacity; the
    // key is wiped in place when the box is dropped.
    key: Box<DataKey>,
    created: Duration,
    last_used: Duration,
    uses: u64,
}

/// A key service with a bounded cache of unwrapped data keys in front.
pub struct CachingKms<K, C: CacheClock = MonotonicClock> {
    inner: K,
    limits: CacheLimits,
    clock: C,
    entries: Vec<Entry>,
    stats: CacheStats,
}

impl<K, C: CacheClock> fmt::Debug for CachingKms<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingKms")
            .field("limits", &self.limits)
            .field("entries", &self.entries.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<K: Kms> CachingKms<K> {
    /// Wraps `inner` with a cache bounded by `limits`.
    pub fn new(inner: K, limits: CacheLimits) -> Result<Self, KmsError> {
        Self::with_clock(inner, limits, MonotonicClock::default())
    }
}

impl<K: Kms, C: CacheClock> CachingKms<K, C> {
    /// [`CachingKms::new`] with a given time source.
    pub fn with_clock(inner: K, limits: CacheLimits, clock: C) -> Result<Self, KmsError> {
        limits.check()?;
        log::info!(
            "envol data-key cache on: up to {} keys, each for at most {:?} and {} uses",
            limits.max_entries,
            limits.max_age,
            limits.max_uses
        );
        Ok(CachingKms {
            inner,
            limits,
            clock,
            entries: Vec::new(),
            stats: CacheStats::default(),
        })
    }

    /// The service behind the cache.
    pub fn inner(&self) -> &K {
        &self.inner
    }

    /// The service behind the cache, mutably (administration goes here).
    pub fn inner_mut(&mut self) -> &mut K {
        &mut self.inner
    }

    /// Wipes every cached key and gives the service back.
    pub fn into_inner(mut self) -> K {
        self.entries.clear();
        self.inner
    }

    /// The limits in force.
    pub fn limits(&self) -> CacheLimits {
        self.limits
    }

    /// Counters since the cache was made.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Wipes every cached key (e.g. when a key's policy changes).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Wipes entries that are too old or used up.
    fn expire(&mut self, now: Duration) {
        let limits = self.limits;
        let before = self.entries.len();
        self.entries
            .retain(|e| now.saturating_sub(e.created) < limits.max_age && e.uses < limits.max_uses);
        self.stats.expired += (before - self.entries.len()) as u64;
    }

    fn lookup(&mut self, principal: &str, blob: &[u8], ctx: &[u8]) -> Option<DataKey> {
        let now = self.clock.now();
        self.expire(now);
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.principal == principal && e.blob == blob && e.context == ctx)?;
        e.uses += 1;
        e.last_used = now;
        DataKey::from_bytes(e.key.as_bytes()).ok()
    }

    fn insert(&mut self, principal: &str, blob: &[u8], ctx: &[u8], key: &DataKey) {
        let Ok(copy) = DataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        if self.limits.max_uses <= 1 {
            return; // each key serves one attach: nothing to keep
        }
        while self.entries.len() >= self.limits.max_entries {
            let lru = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i);
            match lru {
                Some(i) => {
                    self.entries.swap_remove(i);
                    self.stats.evicted += 1;
                }
                None => break,
            }
        }
        let now = self.clock.now();
        self.entries.push(Entry {
            principal: principal.into(),
            blob: blob.to_vec(),
            context: ctx.to_vec(),
            key: Box::new(copy),
            created: now,
            last_used: now,
            uses: 1,
        });
    }
}

impl<K: Kms, C: CacheClock> Kms for CachingKms<K, C> {
    fn generate_data_key(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        self.inner
            .generate_data_key(principal, key_id, size, context, blob_out)
    }

    fn generate_data_key_without_plaintext(
        &mut self,
        principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner
            .generate_data_key_without_plaintext(principal, key_id, size, context, blob_out)
    }

    fn decrypt_data_key(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        let mut enc = [0u8; MAX_CONTEXT_ENCODED];
        let n = context
            .encode(&mut enc)
            .map_err(|_| KmsError::InvalidArgument)?;
        if let Some(k) = self.lookup(principal, blob, &enc[..n]) {
            self.stats.hits += 1;
            return Ok(k);
        }
        self.stats.misses += 1;
        let key = self.inner.decrypt_data_key(principal, blob, context)?;
        self.insert(principal, blob, &enc[..n], &key);
        Ok(key)
    }

    fn re_encrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        source_context: &Context<'_>,
        dest_key_id: &str,
        dest_context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner.re_encrypt(
            principal,
            blob,
            source_context,
            dest_key_id,
            dest_context,
            blob_out,
        )
    }

    fn encrypt(
        &mut self,
        principal: &str,
        key_id: &str,
        context: &Context<'_>,
        plaintext: &[u8],
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner
            .encrypt(principal, key_id, context, plaintext, blob_out)
    }

    fn decrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        self.inner.decrypt(principal, blob, context, out)
    }

    /// Always asks the service: a lease renewal must see a revocation at
    /// once, not after a cached answer expires.
    fn check_decrypt(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<(), KmsError> {
        let r = self.inner.check_decrypt(principal, blob, context);
        if r.is_err() {
            // A refused principal loses what the cache holds for it too.
            self.entries
                .retain(|e| e.principal != principal || e.blob != blob);
        }
        r
    }

    /// Drops every cached key for the blob, then asks the service.
    fn retire_context(
        &mut self,
        principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<bool, KmsError> {
        self.entries.retain(|e| e.blob != blob);
        self.inner.retire_context(principal, blob, context)
    }
}
