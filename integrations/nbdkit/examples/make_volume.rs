//! Makes what the nbdkit plugin serves, for trying it and for the
//! benchmark: a sealed key store with master key `disk-key` (the
//! hypervisor may use it for volumes, the admin may manage it), its root
//! key in a file, and an empty AES-256-XTS volume.
//!
//!     cargo run --release -p envol-nbdkit --example make_volume -- DIR SIZE_MIB [SECTOR]
//!
//! writes DIR/kms.store, DIR/root.key (64 hex digits, mode 0600) and
//! DIR/disk.envol, then prints the nbdkit command that serves it.

use std::error::Error;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use envol::header::{self, CipherSuite, Params};
use envol::kms::policy::Policy;
use envol::kms::{Entropy, LocalKms, OsEntropy, SystemClock};
use envol::volume::{FileDevice, Volume};

/// The hypervisor may use the key for volumes; the admin may manage it
/// but not use it.
const POLICY: &str = include_str!("../policy.json");

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: make_volume DIR SIZE_MIB [SECTOR_SIZE]";
    let dir = PathBuf::from(args.first().ok_or(usage)?);
    let mib: u64 = args.get(1).ok_or(usage)?.parse().map_err(|_| usage)?;
    let sector_size: u32 = match args.get(2) {
        Some(s) => s.parse().map_err(|_| usage)?,
        None => 4096,
    };
    std::fs::create_dir_all(&dir)?;

    let mut root = [0u8; 32];
    OsEntropy.fill(&mut root)?;
    let hex: String = root.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("root.key"))?
        .write_all(format!("{hex}\n").as_bytes())?;

    let mut kms = LocalKms::new(Box::new(OsEntropy), Box::new(SystemClock), None);
    kms.set_service_policy("operator", Policy::allow_all(&["operator"]))?;
    kms.create_key("operator", "disk-key", Policy::parse(POLICY)?)?;
    let mut volume_id = [0u8; 16];
    OsEntropy.fill(&mut volume_id)?;
    let params = Params {
        suite: CipherSuite::AesXts256Plain64,
        sector_size,
        data_offset: header::DEFAULT_DATA_OFFSET,
        volume_size: mib << 20,
        volume_id,
    };
    let volume = dir.join("disk.envol");
    let dev = FileDevice::create(&volume, params.data_offset + params.volume_size)?;
    let vol = Volume::create(dev, &mut kms, "hypervisor", "disk-key", params)?;
    drop(vol.detach().map_err(|(_, e)| e)?);
    std::fs::write(dir.join("kms.store"), kms.seal(&root)?)?;

    println!(
        "nbdkit -U {d}/nbd.sock --filter=blocksize target/nbdkit/nbdkit-envol-plugin.so \\\n    \
         volume={d}/disk.envol principal=hypervisor store={d}/kms.store \\\n    \
         root-key-file={d}/root.key minblock={sector_size}",
        d = dir.display()
    );
    Ok(())
}
