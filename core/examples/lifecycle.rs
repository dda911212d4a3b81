//! The main job: the whole envelope-encryption lifecycle of one volume on a
//! file-backed disk, printed step by step.
//!
//! Run: `cargo run --release -p envol --example lifecycle`

use std::error::Error;

use envol::header::{self, CipherSuite, Params};
use envol::kms::policy::Policy;
use envol::kms::{LocalKms, OsEntropy, SystemClock};
use envol::volume::{FileDevice, Volume};

const POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    { "Sid": "HypervisorUsesKeyForVolumes", "Effect": "Allow",
      "Principal": {"Envol": "hypervisor"},
      "Action": ["kms:GenerateDataKey*", "kms:Decrypt", "kms:ReEncrypt*"],
      "Condition": {"StringLike": {"kms:EncryptionContext:volume": "vol-*"}} },
    { "Sid": "AdminManagesKey", "Effect": "Allow",
      "Principal": {"Envol": "admin"}, "Action": "kms:*" },
    { "Sid": "AdminNeverSeesDataKeys", "Effect": "Deny",
      "Principal": {"Envol": "admin"},
      "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:Encrypt"] }
  ]
}"#;

const SECTOR: u32 = 4096;
const SECTORS: u64 = 256;

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("envol {} - volume lifecycle demo", envol::VERSION);
    let dir = std::env::temp_dir().join(format!("envol-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let disk = dir.join("disk.img");

    step(
        1,
        "key service: master key `disk-key` with a least-privilege policy",
    );
    let mut kms = LocalKms::new(Box::new(OsEntropy), Box::new(SystemClock), None);
    // Who may create keys at all: the operator, by the service policy.
    kms.set_service_policy("operator", Policy::allow_all(&["operator"]))?;
    kms.create_key("operator", "disk-key", Policy::parse(POLICY)?)?;
    kms.create_key("operator", "disk-key-2", Policy::parse(POLICY)?)?;
    println!("    hypervisor: GenerateDataKey*/Decrypt/ReEncrypt* for contexts volume=vol-*");
    println!("    admin: manages the key, explicitly denied data keys");

    step(
        2,
        "create an encrypted volume (fresh data key, wrapped in the header)",
    );
    let mut id = [0u8; 16];
    getrandom_id(&mut id);
    let params = Params {
        suite: CipherSuite::AesXts256Plain64,
        sector_size: SECTOR,
        data_offset: header::DEFAULT_DATA_OFFSET,
        volume_size: SECTORS * u64::from(SECTOR),
        volume_id: id,
    };
    let dev = FileDevice::create(&disk, params.data_offset + params.volume_size)?;
    let vol = Volume::create(dev, &mut kms, "hypervisor", "disk-key", params)?;
    let owned = vol.header();
    let h = owned.view();
    println!(
        "    {} : {} sectors of {} bytes, data at byte {}, backend {}",
        disk.display(),
        SECTORS,
        SECTOR,
        params.data_offset,
        vol.backend().map_or("none", |b| b.name())
    );
    println!(
        "    volume id vol-{}, wrapped key under `{}` ({} bytes)",
        String::from_utf8_lossy(&params.volume_id_hex()),
        h.key_id(),
        h.blob.len()
    );

    step(3, "the guest writes data");
    let msg = b"Dear guest, this is your secret data. ";
    let data: Vec<u8> = (0..16 * SECTOR as usize)
        .map(|i| msg[i % msg.len()])
        .collect();
    let mut scratch = vec![0u8; 64 * 1024];
    vol.write_sectors(100, &data, &mut scratch)?;
    vol.flush()?;
    println!("    wrote {} bytes at sectors 100..116", data.len());

    step(4, "the raw disk holds no plaintext");
    let raw = std::fs::read(&disk)?;
    let found = raw.windows(20).any(|w| w == &msg[..20]);
    println!(
        "    searched {} bytes for the guest's text: {}",
        raw.len(),
        if found { "FOUND (bug)" } else { "not found" }
    );
    if found {
        return Err("plaintext on disk".into());
    }

    step(5, "stop: detach wipes the data key from memory");
    let detached = vol.detach().map_err(|(_, e)| e)?;
    println!(
        "    detached: vol-{} holds no key (a detached volume has no read/write methods)",
        String::from_utf8_lossy(&detached.header().params.volume_id_hex())
    );

    step(
        6,
        "start: attach as `hypervisor` (unwrap through the key service) and read back",
    );
    let vol = detached
        .attach(&mut kms, "hypervisor")
        .map_err(|(_, e)| e)?;
    let mut back = vec![0u8; data.len()];
    vol.read_sectors(100, &mut back)?;
    println!(
        "    read back: {}",
        if back == data {
            "identical"
        } else {
            "MISMATCH"
        }
    );
    if back != data {
        return Err("read-back mismatch".into());
    }
    let detached = vol.detach().map_err(|(_, e)| e)?;

    step(
        7,
        "an unauthorized principal is refused, and the refusal is audited",
    );
    let (detached, err) = detached
        .attach(&mut kms, "admin")
        .err()
        .ok_or("admin attached")?;
    println!("    attach as `admin`: {err}");
    if let Some(e) = kms
        .audit_log()
        .iter()
        .rev()
        .find(|e| e.principal == "admin")
    {
        println!(
            "    audit #{}: principal={} action={} key={} outcome={}",
            e.seq,
            e.principal,
            e.action.name(),
            e.key_id,
            e.outcome.name()
        );
    }
    let log: Vec<_> = kms.audit_log().iter().cloned().collect();
    kms.verify_audit(&log, true, None)?;
    println!(
        "    audit chain of {} events verifies",
        kms.audit_log().len()
    );

    step(
        8,
        "rewrap to a new master key (data untouched, crash-safe header update)",
    );
    let vol = detached
        .attach(&mut kms, "hypervisor")
        .map_err(|(_, e)| e)?;
    vol.rewrap(&mut kms, "hypervisor", "disk-key-2")?;
    println!("    header now names `{}`", vol.header().view().key_id());
    let detached = vol.detach().map_err(|(_, e)| e)?;

    step(9, "disable the master key: the next start is refused");
    kms.disable_key("admin", "disk-key-2")?;
    let (detached, err) = detached
        .attach(&mut kms, "hypervisor")
        .err()
        .ok_or("attached with a disabled key")?;
    println!("    attach as `hypervisor`: {err}");
    kms.enable_key("admin", "disk-key-2")?;
    let vol = detached
        .attach(&mut kms, "hypervisor")
        .map_err(|(_, e)| e)?;
    vol.read_sectors(100, &mut back)?;
    println!(
        "    re-enabled: attach and read back {}",
        if back == data { "ok" } else { "MISMATCH" }
    );
    drop(vol);

    std::fs::remove_dir_all(&dir)?;
    println!("\ndone: every step behaved as expected");
    Ok(())
}

/// A random volume id from the OS.
fn getrandom_id(id: &mut [u8; 16]) {
    use envol::kms::Entropy;
    let _ = OsEntropy.fill(id);
}
