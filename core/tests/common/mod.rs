//! What the core's integration tests share: a seeded RNG, a manual clock,
//! and a reference key service with an operator allowed to create keys.

#![allow(dead_code, clippy::cast_possible_truncation)] // test helpers

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envol::kms::policy::Policy;
use envol::kms::{Clock, LocalKms};

/// The seed's least-privilege key policy: the hypervisor may make and
/// unwrap data keys for volumes only; the admin manages the key but may not
/// touch data keys.
pub const LEAST_PRIVILEGE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    { "Sid": "HypervisorUsesKeysForVolumes",
      "Effect": "Allow",
      "Principal": {"Envol": "hypervisor"},
      "Action": ["kms:GenerateDataKey*", "kms:Decrypt", "kms:ReEncrypt*"],
      "Condition": {"StringLike": {"kms:EncryptionContext:volume": "vol-*"}} },
    { "Sid": "AdminManages",
      "Effect": "Allow",
      "Principal": {"Envol": "admin"},
      "Action": "kms:*" },
    { "Sid": "AdminNeverSeesDataKeys",
      "Effect": "Deny",
      "Principal": {"Envol": "admin"},
      "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:Encrypt"] }
  ]
}"#;

pub const DAY: u64 = 86_400;

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct FakeClock(pub Arc<AtomicU64>);

impl Clock for FakeClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// SplitMix64: repeatable randomness for tests.
pub struct SeededRng(pub u64);

impl rand_core::TryRng for SeededRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for c in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for SeededRng {}

/// An empty service at time 1,700,000,000 whose service policy lets
/// `operator` create keys; the clock handle moves its time.
pub fn service(seed: u64) -> (LocalKms, Arc<AtomicU64>) {
    let t = Arc::new(AtomicU64::new(1_700_000_000));
    let mut kms = LocalKms::new(
        Box::new(SeededRng(seed)),
        Box::new(FakeClock(t.clone())),
        None,
    );
    kms.set_service_policy("operator", Policy::allow_all(&["operator"]))
        .unwrap();
    (kms, t)
}

/// [`service`] with `disk-key` under [`LEAST_PRIVILEGE`].
pub fn with_key(seed: u64) -> (LocalKms, Arc<AtomicU64>) {
    let (mut kms, t) = service(seed);
    kms.create_key(
        "operator",
        "disk-key",
        Policy::parse(LEAST_PRIVILEGE).unwrap(),
    )
    .unwrap();
    (kms, t)
}
