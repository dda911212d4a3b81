//! Attached-volume writes to a file against plain unencrypted writes of the
//! same file: the cost of encrypting on the way to the disk (page cache, no
//! fsync), side by side in one criterion group.
//!
//!     cargo bench -p envol-bench --bench volume
#![allow(missing_docs)]

use std::os::unix::fs::FileExt;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use envol::header::{CipherSuite, DEFAULT_DATA_OFFSET, Params};
use envol::kms::policy::Policy;
use envol::kms::{LocalKms, OsEntropy, SystemClock};
use envol::volume::{FileDevice, Volume};

const CHUNK: usize = 1 << 20; // one 1 MiB write per call
const SIZE: u64 = 64 << 20;

fn volume(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("envol-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut kms = LocalKms::new(Box::new(OsEntropy), Box::new(SystemClock), None);
    kms.set_service_policy("op", Policy::allow_all(&["op"]))
        .unwrap();
    kms.create_key("op", "k", Policy::allow_all(&["op"]))
        .unwrap();
    let params = Params {
        suite: CipherSuite::AesXts256Plain64,
        sector_size: 4096,
        data_offset: DEFAULT_DATA_OFFSET,
        volume_size: SIZE,
        volume_id: [7; 16],
    };
    let dev = FileDevice::create(&dir.join("enc.img"), DEFAULT_DATA_OFFSET + SIZE).unwrap();
    let vol = Volume::create(dev, &mut kms, "op", "k", params).unwrap();
    let plain = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("plain.img"))
        .unwrap();
    plain.set_len(DEFAULT_DATA_OFFSET + SIZE).unwrap();
    let data = vec![0x5au8; CHUNK];
    let mut scratch = vec![0u8; 256 * 1024];
    let sectors_per_chunk = (CHUNK / 4096) as u64;
    let chunks = SIZE / CHUNK as u64;

    let mut g = c.benchmark_group("file-writes/4096-byte-sectors");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    let mut i = 0u64;
    g.bench_function(BenchmarkId::new("plain-pwrite", CHUNK), |b| {
        b.iter(|| {
            let off = DEFAULT_DATA_OFFSET + (i % chunks) * CHUNK as u64;
            plain.write_all_at(&data, off).unwrap();
            i += 1;
        })
    });
    let mut j = 0u64;
    g.bench_function(
        BenchmarkId::new(
            format!("envol-{}", vol.backend().map_or("detached", |b| b.name())),
            CHUNK,
        ),
        |b| {
            b.iter(|| {
                let first = (j % chunks) * sectors_per_chunk;
                vol.write_sectors(first, &data, &mut scratch).unwrap();
                j += 1;
            })
        },
    );
    g.finish();
    drop(vol);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, volume);
criterion_main!(benches);
