//! Volume commands: create, inspect, check, rewrap, retire, import, export,
//! the dm-crypt command line and the data key for it.

use std::fs::File;
use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::{FileExt as _, FileTypeExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use clap::Subcommand;
use envol::envelope::DataKey;
use envol::header::{self, CipherSuite, Header, Params, SLOT_SIZE, VolumeState};
use envol::kms::{Entropy, OsEntropy};
use envol::volume::{AttachedVolume, CreateOptions, FileDevice, Volume, unlock_slots};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::Ctx;
use crate::out::{Failure, bytes, vol_id};
use crate::service::{Service, crash_point};

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Creates a volume on a file (made if missing) or a block device.
    Create {
        path: PathBuf,
        /// Data area size: bytes, or with K, M, G, T (binary: 1G = 2^30).
        #[arg(long)]
        size: String,
        /// Master key the data key is wrapped under.
        #[arg(long)]
        key: String,
        /// Sector size: a power of two in 512..=65536.
        #[arg(long, default_value_t = 4096)]
        sector_size: u32,
        /// aes-xts-256 (64-byte data key) or aes-xts-128 (32-byte).
        #[arg(long, default_value = "aes-xts-256")]
        cipher: String,
        /// `zero`: write every sector so fresh sectors read as zeros
        /// (otherwise they read as noise until written).
        #[arg(long)]
        fill: Option<String>,
        /// Replace an existing envol volume (its data is lost for good).
        #[arg(long)]
        overwrite: bool,
    },
    /// Both header copies, which is current, and whether the MAC verifies
    /// (with a key service).
    Inspect { path: PathBuf },
    /// Attaches (the key service decides), verifies the header, detaches.
    Check { path: PathBuf },
    /// Wraps the data key under another master key (data untouched).
    Rewrap {
        path: PathBuf,
        #[arg(long)]
        key: String,
    },
    /// Marks the volume retired (a tombstone in the reference service).
    Retire { path: PathBuf },
    /// Encrypts a plaintext raw image into the volume (from sector 0).
    Import { source: PathBuf, path: PathBuf },
    /// Decrypts the volume's data area into a raw image.
    Export { path: PathBuf, dest: PathBuf },
    /// Prints the cryptsetup command that opens the data area with dm-crypt.
    DmCrypt {
        path: PathBuf,
        #[arg(long, default_value = "envol")]
        name: String,
    },
    /// Writes the data key to standard output, for `cryptsetup
    /// --key-file=-` (never to a terminal; audited like an attach).
    Key { path: PathBuf },
}

/// `10G`, `512M`, `4096`, `1.5T`? (no fractions: whole numbers only).
pub fn parse_size(s: &str) -> Result<u64, Failure> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => u32::MAX,
    };
    let n: u64 = num
        .parse()
        .map_err(|_| ())
        .and_then(|n| if shift == u32::MAX { Err(()) } else { Ok(n) })
        .map_err(|()| {
            Failure::invalid(format!(
                "size {s:?}: a whole number with K, M, G or T (e.g. 10G)"
            ))
        })?;
    n.checked_mul(1u64 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| Failure::invalid(format!("size {s:?} is zero or too large")))
}

fn open_dev(path: &Path) -> Result<FileDevice, Failure> {
    FileDevice::open(path).map_err(|e| Failure::io(path.display(), &e))
}

fn open_volume(path: &Path) -> Result<Volume<FileDevice>, Failure> {
    Volume::open(open_dev(path)?).map_err(|(_, e)| {
        Failure::volume(e, "").hint(format!("{} is not an envol volume", path.display()))
    })
}

fn service(ctx: &Ctx) -> Result<Service, Failure> {
    Service::open(&ctx.choice)?.ok_or_else(|| {
        Failure::invalid("this needs a key service")
            .hint("pass --store PATH (with --root-key-file), or --kms aws, pkcs11 or kmip")
    })
}

/// Runs `f` with the key service, then ends the service (writing the
/// reference store back) whatever `f` said.
fn with_service<T>(
    ctx: &Ctx,
    f: impl FnOnce(&mut Service, &str) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let principal = ctx.principal()?.to_owned();
    let mut svc = service(ctx)?;
    let r = f(&mut svc, &principal);
    let fin = svc.finish();
    let v = r?;
    fin?;
    Ok(v)
}

fn attach(
    path: &Path,
    svc: &mut Service,
    principal: &str,
) -> Result<AttachedVolume<FileDevice>, Failure> {
    open_volume(path)?
        .attach(svc.kms(), principal)
        .map_err(|(_, e)| Failure::volume(e, principal))
}

fn detach(v: AttachedVolume<FileDevice>, principal: &str) -> Result<(), Failure> {
    v.detach()
        .map(drop)
        .map_err(|(_, e)| Failure::volume(e, principal))
}

fn progress(ctx: &Ctx, total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if ctx.out.json || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Splits `total` bytes into 1 MiB chunks done by all cores; `work` gets
/// (offset, length) and returns an error to stop everything.
fn parallel(
    total: u64,
    pb: &ProgressBar,
    work: impl Fn(u64, usize, &mut Vec<u8>) -> Result<(), Failure> + Sync,
) -> Result<(), Failure> {
    const CHUNK: usize = 1 << 20;
    let next = AtomicU64::new(0);
    let failed: Mutex<Option<Failure>> = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = Vec::with_capacity(CHUNK);
                loop {
                    let off = next.fetch_add(CHUNK as u64, Ordering::Relaxed);
                    if off >= total
                        || failed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .is_some()
                    {
                        return;
                    }
                    let len = usize::try_from(total - off).map_or(CHUNK, |r| r.min(CHUNK));
                    if let Err(e) = work(off, len, &mut buf) {
                        failed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert(e);
                        return;
                    }
                    pb.inc(len as u64);
                }
            });
        }
    });
    pb.finish_and_clear();
    match failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn suite_text(s: CipherSuite) -> &'static str {
    match s {
        CipherSuite::AesXts256Plain64 => "aes-xts-plain64, AES-256 (64-byte key)",
        CipherSuite::AesXts128Plain64 => "aes-xts-plain64, AES-128 (32-byte key)",
    }
}

fn key_bits(s: CipherSuite) -> u32 {
    match s {
        CipherSuite::AesXts256Plain64 => 512,
        CipherSuite::AesXts128Plain64 => 256,
    }
}

fn params_json(p: &Params) -> serde_json::Value {
    json!({"cipher": match p.suite { CipherSuite::AesXts256Plain64 => "aes-xts-256",
                                     CipherSuite::AesXts128Plain64 => "aes-xts-128" },
           "sector_size": p.sector_size, "data_offset": p.data_offset,
           "volume_size": p.volume_size, "sectors": p.sectors(),
           "volume_id": vol_id(&p.volume_id)})
}

pub fn run(ctx: &Ctx, c: VolumeCmd) -> Result<(), Failure> {
    match c {
        VolumeCmd::Create {
            path,
            size,
            key,
            sector_size,
            cipher,
            fill,
            overwrite,
        } => create(
            ctx,
            &path,
            &size,
            &key,
            sector_size,
            &cipher,
            fill,
            overwrite,
        ),
        VolumeCmd::Inspect { path } => inspect(ctx, &path),
        VolumeCmd::Check { path } => {
            let (backend, id) = with_service(ctx, |svc, p| {
                let v = attach(&path, svc, p)?;
                let backend = v.backend().map_or("none", |b| b.name());
                let id = vol_id(&v.params().volume_id);
                detach(v, p)?;
                Ok((backend, id))
            })?;
            ctx.out.done(
                &format!(
                    "{}: the key service let {} attach; header MAC verified; engine {backend}; detached",
                    path.display(),
                    ctx.principal()?
                ),
                json!({"volume": path, "volume_id": id, "verified": true, "backend": backend}),
            )
        }
        VolumeCmd::Rewrap { path, key } => {
            with_service(ctx, |svc, p| {
                let v = attach(&path, svc, p)?;
                v.rewrap(svc.kms(), p, &key)
                    .map_err(|e| Failure::volume(e, p))?;
                detach(v, p)
            })?;
            ctx.out.done(
                &format!("{}: data key now wrapped under {key}", path.display()),
                json!({"volume": path, "key_id": key}),
            )
        }
        VolumeCmd::Retire { path } => {
            with_service(ctx, |svc, p| {
                let v = attach(&path, svc, p)?;
                v.retire(svc.kms(), p)
                    .map(drop)
                    .map_err(|(_, e)| Failure::volume(e, p))
            })?;
            ctx.out.done(
                &format!("{}: retired; it will not attach again", path.display()),
                json!({"volume": path, "retired": true}),
            )
        }
        VolumeCmd::Import { source, path } => import(ctx, &source, &path),
        VolumeCmd::Export { path, dest } => export(ctx, &path, &dest),
        VolumeCmd::DmCrypt { path, name } => {
            let vol = open_volume(&path)?;
            let p = vol.header().params;
            let cmd = format!(
                "cryptsetup open --type plain --cipher aes-xts-plain64 --key-size {} \
                 --offset {} --size {} --sector-size {} --iv-large-sectors --key-file=- {} {name}",
                key_bits(p.suite),
                p.data_offset / 512,
                p.volume_size / 512,
                p.sector_size,
                path.display()
            );
            let piped = format!("envol volume key {} | {cmd}", path.display());
            ctx.out.done(
                &piped,
                json!({"command": cmd, "pipeline": piped, "key_bits": key_bits(p.suite),
                       "offset_sectors": p.data_offset / 512, "size_sectors": p.volume_size / 512,
                       "sector_size": p.sector_size}),
            )
        }
        VolumeCmd::Key { path } => {
            if std::io::stdout().is_terminal() {
                return Err(
                    Failure::invalid("refusing to write a data key to a terminal").hint(
                        "pipe it: envol volume key VOLUME | cryptsetup open ... --key-file=-",
                    ),
                );
            }
            let dek = with_service(ctx, |svc, p| data_key(&path, svc, p))?;
            let mut o = std::io::stdout().lock();
            o.write_all(dek.as_bytes())
                .and_then(|()| o.flush())
                .map_err(|e| Failure::io("standard output", &e))
        }
    }
}

/// The data key of the newest copy whose MAC verifies.
fn data_key(path: &Path, svc: &mut Service, principal: &str) -> Result<DataKey, Failure> {
    let dev = open_dev(path)?;
    let mut slots = vec![0u8; 2 * SLOT_SIZE];
    dev.0
        .read_exact_at(&mut slots, 0)
        .map_err(|e| Failure::io(path.display(), &e))?;
    let (_, slot) = unlock_slots(
        &slots[..SLOT_SIZE],
        &slots[SLOT_SIZE..],
        None,
        svc.kms(),
        principal,
    )
    .map_err(|e| Failure::volume(e, principal))?;
    let raw = &slots[slot * SLOT_SIZE..(slot + 1) * SLOT_SIZE];
    let h = Header::parse(raw).map_err(Failure::header)?;
    let strings = h.context_strings();
    svc.kms()
        .decrypt_data_key(principal, h.blob, &strings.context())
        .map_err(|e| Failure::kms(e, principal, Some(h.key_id())))
}

#[allow(clippy::too_many_arguments)]
fn create(
    ctx: &Ctx,
    path: &Path,
    size: &str,
    key: &str,
    sector_size: u32,
    cipher: &str,
    fill: Option<String>,
    overwrite: bool,
) -> Result<(), Failure> {
    let volume_size = parse_size(size)?;
    let suite = match cipher {
        "aes-xts-256" => CipherSuite::AesXts256Plain64,
        "aes-xts-128" => CipherSuite::AesXts128Plain64,
        _ => {
            return Err(Failure::invalid(format!(
                "cipher {cipher:?}: aes-xts-256 or aes-xts-128"
            )));
        }
    };
    let fill_zero = match fill.as_deref() {
        None => false,
        Some("zero") => true,
        Some(f) => return Err(Failure::invalid(format!("--fill {f:?}: only `zero`"))),
    };
    let mut volume_id = [0u8; 16];
    OsEntropy
        .fill(&mut volume_id)
        .map_err(|e| Failure::kms(e, "", None))?;
    let params = Params {
        suite,
        sector_size,
        data_offset: header::DEFAULT_DATA_OFFSET,
        volume_size,
        volume_id,
    };
    params.check().map_err(|e| {
        Failure::new("ENVOL_ERR_VOLUME_PARAMS", format!("{e}")).hint(
            "the size must be a whole number of sectors; sectors are 512..=65536 bytes, a power of two",
        )
    })?;
    let need = params.data_offset + volume_size;
    let existed = path.exists();
    let dev = if existed {
        let dev = open_dev(path)?;
        let meta = dev
            .0
            .metadata()
            .map_err(|e| Failure::io(path.display(), &e))?;
        if meta.file_type().is_block_device() {
            let len = block_len(&dev.0).map_err(|e| Failure::io(path.display(), &e))?;
            if len < need {
                return Err(Failure::invalid(format!(
                    "{} holds {} but the volume needs {}",
                    path.display(),
                    bytes(len),
                    bytes(need)
                )));
            }
        }
        dev
    } else {
        FileDevice::create(path, need).map_err(|e| Failure::io(path.display(), &e))?
    };
    let r = with_service(ctx, |svc, p| {
        if existed
            && dev
                .0
                .metadata()
                .is_ok_and(|m| m.is_file() && m.len() < need)
        {
            let mut probe = [0u8; 2 * SLOT_SIZE];
            let n = dev.0.read_at(&mut probe, 0).unwrap_or(0);
            if !overwrite
                && (header::has_magic(&probe[..SLOT_SIZE.min(n)])
                    || (n > SLOT_SIZE && header::has_magic(&probe[SLOT_SIZE..n])))
            {
                return Err(Failure::volume(envol::volume::VolumeError::Exists, p));
            }
            dev.0
                .set_len(need)
                .map_err(|e| Failure::io(path.display(), &e))?;
        }
        let v = Volume::create_with(dev, svc.kms(), p, key, params, &CreateOptions { overwrite })
            .map_err(|e| Failure::volume(e, p))?;
        if fill_zero {
            let pb = progress(ctx, volume_size, "filling with zeros");
            let ss = u64::from(sector_size);
            parallel(volume_size, &pb, |off, len, buf| {
                buf.clear();
                buf.resize(len, 0);
                v.encrypt_sectors(off / ss, buf)
                    .map_err(|e| Failure::volume(e, p))?;
                v.device()
                    .0
                    .write_all_at(buf, params.data_offset + off)
                    .map_err(|e| Failure::io(path.display(), &e))
            })?;
        }
        detach(v, p)
    });
    if r.is_err() && !existed {
        let _ = std::fs::remove_file(path);
    }
    r?;
    ctx.out.done(
        &format!(
            "created {}: {} in {} sectors of {} bytes, {}, data at byte {}\n  volume id {}\n  data key wrapped under {key}{}",
            path.display(),
            bytes(volume_size),
            params.sectors(),
            sector_size,
            suite_text(suite),
            params.data_offset,
            vol_id(&volume_id),
            if fill_zero { "\n  every sector written with zeros" } else { "" }
        ),
        json!({"volume": path, "key_id": key, "params": params_json(&params), "filled": fill_zero}),
    )
}

fn block_len(f: &File) -> std::io::Result<u64> {
    use std::io::Seek as _;
    let mut f = f;
    f.seek(std::io::SeekFrom::End(0))
}

const SLOT_NAMES: [&str; 2] = ["A", "B"];

fn state_text(s: VolumeState) -> &'static str {
    match s {
        VolumeState::Active => "active",
        VolumeState::Retired => "retired",
    }
}

fn inspect(ctx: &Ctx, path: &Path) -> Result<(), Failure> {
    let dev = open_dev(path)?;
    let mut slots = vec![0u8; 2 * SLOT_SIZE];
    dev.0
        .read_exact_at(&mut slots, 0)
        .map_err(|e| Failure::io(path.display(), &e).hint("too short for an envol volume"))?;
    let copies = [
        Header::parse(&slots[..SLOT_SIZE]),
        Header::parse(&slots[SLOT_SIZE..]),
    ];
    let vol = Volume::open(dev).map_err(|(_, e)| Failure::volume(e, ""))?;
    let current = vol.header();
    let current_slot = copies
        .iter()
        .position(|c| {
            c.as_ref()
                .is_ok_and(|h| h.sequence == current.sequence && h.params == current.params)
        })
        .unwrap_or(0);
    // With a key service: which copy's MAC verifies (nothing is written).
    let verified = match Service::open(&ctx.choice)? {
        None => None,
        Some(mut svc) => {
            let principal = ctx.principal()?.to_owned();
            let r = unlock_slots(
                &slots[..SLOT_SIZE],
                &slots[SLOT_SIZE..],
                None,
                svc.kms(),
                &principal,
            );
            svc.finish()?;
            Some(
                r.map(|(_, slot)| slot)
                    .map_err(|e| (e.status_name(), e.to_string())),
            )
        }
    };
    let mut human = format!("{}\n", path.display());
    let mut list = Vec::new();
    for (i, c) in copies.iter().enumerate() {
        let name = SLOT_NAMES[i];
        match c {
            Ok(h) => {
                human.push_str(&format!(
                    "  copy {name}: sequence {}, {}, key {}{}\n",
                    h.sequence,
                    state_text(h.state),
                    h.key_id(),
                    if i == current_slot { " (current)" } else { "" }
                ));
                list.push(json!({"slot": name, "ok": true, "sequence": h.sequence,
                    "state": state_text(h.state), "key_id": h.key_id(),
                    "current": i == current_slot, "volume_id": vol_id(&h.params.volume_id)}));
            }
            Err(e) => {
                human.push_str(&format!(
                    "  copy {name}: unreadable: {e} ({})\n",
                    e.status_name()
                ));
                list.push(json!({"slot": name, "ok": false, "status": e.status_name(),
                    "error": e.to_string()}));
            }
        }
    }
    let p = current.params;
    human.push_str(&format!(
        "  cipher {}\n  sector size {}, data at byte {}, size {} ({} sectors)\n  volume id {}\n",
        suite_text(p.suite),
        p.sector_size,
        p.data_offset,
        bytes(p.volume_size),
        p.sectors(),
        vol_id(&p.volume_id)
    ));
    let mac = match &verified {
        None => {
            human.push_str("  MAC: not checked (no key service given)");
            json!(null)
        }
        Some(Ok(slot)) => {
            human.push_str(&format!(
                "  MAC: copy {} verifies under the data key the key service unwrapped",
                SLOT_NAMES[*slot]
            ));
            json!({"verified": true, "slot": SLOT_NAMES[*slot]})
        }
        Some(Err((status, msg))) => {
            human.push_str(&format!("  MAC: not verified: {msg} ({status})"));
            json!({"verified": false, "status": status, "error": msg})
        }
    };
    ctx.out.done(
        &human,
        json!({"volume": path, "copies": list, "params": params_json(&p),
               "current": SLOT_NAMES[current_slot], "sequence": current.sequence, "mac": mac}),
    )
}

/// Encrypts `source` (a plaintext raw image) into the volume from sector 0.
/// Interrupted, it leaves a prefix of sectors imported; run it again: it
/// starts over and rewrites every sector.
fn import(ctx: &Ctx, source: &Path, path: &Path) -> Result<(), Failure> {
    let src = File::open(source).map_err(|e| Failure::io(source.display(), &e))?;
    let len = src
        .metadata()
        .map_err(|e| Failure::io(source.display(), &e))?
        .len();
    let written = with_service(ctx, |svc, p| {
        let v = attach(path, svc, p)?;
        let params = *v.params();
        let ss = u64::from(params.sector_size);
        if len > params.volume_size {
            return Err(Failure::invalid(format!(
                "{} ({}) is larger than the volume ({})",
                source.display(),
                bytes(len),
                bytes(params.volume_size)
            )));
        }
        let total = len.div_ceil(ss) * ss;
        let pb = progress(ctx, total, "importing");
        let done = AtomicU64::new(0);
        parallel(total, &pb, |off, n, buf| {
            buf.clear();
            buf.resize(n, 0);
            let have = usize::try_from(len.saturating_sub(off)).map_or(n, |r| r.min(n));
            src.read_exact_at(&mut buf[..have], off)
                .map_err(|e| Failure::io(source.display(), &e))?;
            v.encrypt_sectors(off / ss, buf)
                .map_err(|e| Failure::volume(e, p))?;
            v.device()
                .0
                .write_all_at(buf, params.data_offset + off)
                .map_err(|e| Failure::io(path.display(), &e))?;
            if done.fetch_add(n as u64, Ordering::Relaxed) + n as u64 >= total / 2 {
                crash_point("import-half");
            }
            Ok(())
        })?;
        detach(v, p)?;
        Ok(total)
    })?;
    ctx.out.done(
        &format!(
            "imported {} ({}) into {}",
            source.display(),
            bytes(len),
            path.display()
        ),
        json!({"volume": path, "source": source, "bytes": len, "written": written}),
    )
}

/// Decrypts the data area into `dest`, written as `dest.partial` and
/// renamed when complete: an interrupted export leaves no `dest`.
fn export(ctx: &Ctx, path: &Path, dest: &Path) -> Result<(), Failure> {
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let size = with_service(ctx, |svc, p| {
        let v = attach(path, svc, p)?;
        let params = *v.params();
        let ss = u64::from(params.sector_size);
        let out = File::create(&partial).map_err(|e| Failure::io(partial.display(), &e))?;
        out.set_len(params.volume_size)
            .map_err(|e| Failure::io(partial.display(), &e))?;
        let pb = progress(ctx, params.volume_size, "exporting");
        let r = parallel(params.volume_size, &pb, |off, n, buf| {
            buf.clear();
            buf.resize(n, 0);
            v.device()
                .0
                .read_exact_at(buf, params.data_offset + off)
                .map_err(|e| Failure::io(path.display(), &e))?;
            v.decrypt_sectors(off / ss, buf)
                .map_err(|e| Failure::volume(e, p))?;
            out.write_all_at(buf, off)
                .map_err(|e| Failure::io(partial.display(), &e))
        })
        .and_then(|()| {
            out.sync_all()
                .map_err(|e| Failure::io(partial.display(), &e))
        });
        if let Err(e) = r {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        std::fs::rename(&partial, dest).map_err(|e| Failure::io(dest.display(), &e))?;
        detach(v, p)?;
        Ok(params.volume_size)
    })?;
    ctx.out.done(
        &format!(
            "exported {} ({}) to {}",
            path.display(),
            bytes(size),
            dest.display()
        ),
        json!({"volume": path, "dest": dest, "bytes": size}),
    )
}
