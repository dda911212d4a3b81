//! Criterion groups per operation and key size: every available envol
//! backend next to OpenSSL and xts-mode, for 512 B and 4 KiB sectors in
//! 64 KiB runs and for one 64 KiB data unit.
//!
//!     cargo bench -p envol-bench --bench xts
#![allow(missing_docs, clippy::cast_possible_truncation)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use envol_bench::{Impl, XtsMode, envol_backends};

const RUN: usize = 64 * 1024;

fn impls(key: &[u8]) -> Vec<Box<dyn Impl>> {
    let mut v: Vec<Box<dyn Impl>> = Vec::new();
    for e in envol_backends(key) {
        v.push(Box::new(e));
    }
    #[cfg(feature = "openssl")]
    v.push(Box::new(envol_bench::ossl::OpenSsl::new(key, "openssl")));
    v.push(Box::new(XtsMode::new(key)));
    v
}

fn xts(c: &mut Criterion) {
    for klen in [32usize, 64] {
        let key: Vec<u8> = (0..klen).map(|i| (i * 29 + 3) as u8).collect();
        for enc in [true, false] {
            let name = format!(
                "{}/xts-aes-{}",
                if enc { "encrypt" } else { "decrypt" },
                klen * 4
            );
            let mut g = c.benchmark_group(name);
            g.throughput(Throughput::Bytes(RUN as u64));
            for sector in [512usize, 4096, RUN] {
                for mut imp in impls(&key) {
                    let mut buf = vec![0u8; RUN];
                    g.bench_function(BenchmarkId::new(imp.name(), sector), |b| {
                        b.iter(|| {
                            if enc {
                                imp.encrypt(0, sector, &mut buf)
                            } else {
                                imp.decrypt(0, sector, &mut buf)
                            }
                        })
                    });
                }
            }
            g.finish();
        }
    }
}

criterion_group!(benches, xts);
criterion_main!(benches);
