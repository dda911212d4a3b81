//! Cost of the key service's data-key calls on `LocalKms`: generate a data
//! key (plaintext + wrapped), and decrypt (unwrap) one, with a one-pair
//! volume context, under the least-privilege policy.
//!
//!     cargo bench -p envol-bench --bench kms
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use envol::envelope::{Context, MAX_BLOB};
use envol::kms::policy::Policy;
use envol::kms::{Kms, LocalKms, OsEntropy, SystemClock};
use envol::xts::KeySize;

const POLICY: &str = r#"{"Statement":[{"Effect":"Allow","Principal":{"Envol":"hypervisor"},
  "Action":["kms:GenerateDataKey*","kms:Decrypt"],
  "Condition":{"StringLike":{"kms:EncryptionContext:volume":"vol-*"}}}]}"#;

fn kms(c: &mut Criterion) {
    let mut kms = LocalKms::new(Box::new(OsEntropy), Box::new(SystemClock), None);
    kms.set_service_policy("operator", Policy::allow_all(&["operator"]))
        .unwrap();
    kms.create_key("operator", "disk-key", Policy::parse(POLICY).unwrap())
        .unwrap();
    let ctx = Context::new(&[("volume", "vol-1")]).unwrap();
    let mut blob = [0u8; MAX_BLOB];
    let (_, n) = kms
        .generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut blob)
        .unwrap();
    let mut g = c.benchmark_group("kms");
    g.bench_function("generate_data_key/xts-aes-256", |b| {
        let mut out = [0u8; MAX_BLOB];
        b.iter(|| {
            kms.generate_data_key("hypervisor", "disk-key", KeySize::Aes256, &ctx, &mut out)
                .unwrap()
        })
    });
    g.bench_function("decrypt_data_key/xts-aes-256", |b| {
        b.iter(|| {
            kms.decrypt_data_key("hypervisor", &blob[..n], &ctx)
                .unwrap()
        })
    });
    g.bench_function("decrypt_data_key+xts_setup", |b| {
        b.iter(|| {
            let dek = kms
                .decrypt_data_key("hypervisor", &blob[..n], &ctx)
                .unwrap();
            envol::xts::Xts::new(dek.as_bytes()).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, kms);
criterion_main!(benches);
