//! Which key service a command talks to, and the reference service's store
//! file: locked for the whole command, read, and replaced atomically (a new
//! file, fsynced, renamed over the old one, the directory fsynced), so two
//! `envol` processes never lose each other's updates and a crash at any
//! point leaves the old store or the new one.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use envol::kms::audit::{AuditEvent, AuditSink, AuditSinkError, parse_lines};
use envol::kms::{Kms, LocalKms, OsEntropy, SystemClock};
use envol_kms::aws::{AwsConfig, AwsKms};
use envol_kms::kmip::{KmipConfig, KmipKms};
use envol_kms::pkcs11::{AuthPin, Pkcs11Config, Pkcs11Kms};
use zeroize::Zeroizing;

use crate::out::Failure;

/// How the command line chose a key service.
#[derive(Clone, Debug, Default)]
pub struct Choice {
    pub kms: Option<String>,
    pub store: Option<PathBuf>,
    pub root_key_file: Option<PathBuf>,
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_token: Option<String>,
    pub pkcs11_pin_file: Option<PathBuf>,
}

/// A key service for one command.
pub enum Service {
    Local(Box<Store>),
    Aws(Box<AwsKms>),
    Pkcs11(Box<Pkcs11Kms>),
    Kmip(Box<KmipKms>),
}

impl Service {
    /// The service `c` names, or `None` if it names none.
    pub fn open(c: &Choice) -> Result<Option<Service>, Failure> {
        match c.kms.as_deref() {
            None | Some("local") if c.store.is_none() => {
                if c.kms.is_some() {
                    return Err(Failure::invalid("--kms local needs --store PATH"));
                }
                Ok(None)
            }
            None | Some("local") => {
                let path = c.store.as_deref().unwrap_or(Path::new(""));
                let root = root_key(c)?;
                Ok(Some(Service::Local(Box::new(Store::open(path, &root)?))))
            }
            Some("aws") => {
                let cfg = AwsConfig::from_env().map_err(|e| {
                    Failure::invalid(format!("AWS configuration: {e}"))
                        .hint("set AWS_REGION and credentials as for the aws command")
                })?;
                let kms = AwsKms::new(cfg).map_err(|e| Failure::invalid(e.to_string()))?;
                Ok(Some(Service::Aws(Box::new(kms))))
            }
            Some("pkcs11") => {
                let (Some(module), Some(token)) = (&c.pkcs11_module, &c.pkcs11_token) else {
                    return Err(Failure::invalid(
                        "--kms pkcs11 needs --pkcs11-module and --pkcs11-token",
                    ));
                };
                let pin = pkcs11_pin(c)?;
                let cfg = Pkcs11Config::new(token.clone(), AuthPin::from(pin.as_str()))
                    .with_module(module);
                let kms = Pkcs11Kms::open(cfg).map_err(|e| {
                    Failure::kms(e, "pkcs11", None).hint(format!(
                        "check the module {}, the token label and the PIN",
                        module.display()
                    ))
                })?;
                Ok(Some(Service::Pkcs11(Box::new(kms))))
            }
            Some("kmip") => {
                let bad = |e: envol_kms::kmip::ConfigError| {
                    Failure::invalid(format!("KMIP configuration: {e}")).hint(
                        "set ENVOL_KMIP_ADDRESS, ENVOL_KMIP_CA, ENVOL_KMIP_CERT and ENVOL_KMIP_KEY",
                    )
                };
                let kms = KmipKms::new(KmipConfig::from_env().map_err(bad)?).map_err(bad)?;
                Ok(Some(Service::Kmip(Box::new(kms))))
            }
            Some(other) => Err(Failure::invalid(format!(
                "unknown key service {other:?}: local, aws, pkcs11 or kmip"
            ))),
        }
    }

    pub fn kms(&mut self) -> &mut dyn Kms {
        match self {
            Service::Local(s) => &mut s.kms,
            Service::Aws(k) => k.as_mut(),
            Service::Pkcs11(k) => k.as_mut(),
            Service::Kmip(k) => k.as_mut(),
        }
    }

    /// Ends the command: the local store is written back (its audit chain
    /// moved on even if the command was refused).
    pub fn finish(self) -> Result<(), Failure> {
        match self {
            Service::Local(s) => (*s).commit(),
            _ => Ok(()),
        }
    }
}

/// The root key: `--root-key-file` (or `ENVOL_ROOT_KEY_FILE`), else
/// `ENVOL_ROOT_KEY`; 64 hex digits (a trailing newline allowed) or 32 raw
/// bytes in a file. Never an argument.
pub fn root_key(c: &Choice) -> Result<Zeroizing<[u8; 32]>, Failure> {
    let text: Zeroizing<Vec<u8>> = match &c.root_key_file {
        Some(p) => Zeroizing::new(std::fs::read(p).map_err(|e| Failure::io(p.display(), &e))?),
        None => match std::env::var("ENVOL_ROOT_KEY") {
            Ok(v) => Zeroizing::new(v.into_bytes()),
            Err(_) => {
                return Err(Failure::invalid("the store's root key is missing").hint(
                    "pass --root-key-file PATH (or set ENVOL_ROOT_KEY_FILE, or ENVOL_ROOT_KEY \
                     to 64 hex digits)",
                ));
            }
        },
    };
    let mut key = Zeroizing::new([0u8; 32]);
    if text.len() == 32 && c.root_key_file.is_some() {
        key.copy_from_slice(&text);
        return Ok(key);
    }
    let t: &[u8] = text.strip_suffix(b"\n").unwrap_or(&text);
    if t.len() != 64 {
        return Err(Failure::invalid(
            "a root key is 64 hex digits (or a file of 32 bytes)",
        ));
    }
    for (i, pair) in t.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => key[i] = u8::try_from(h * 16 + l).unwrap_or_default(),
            _ => return Err(Failure::invalid("a root key is 64 hex digits")),
        }
    }
    Ok(key)
}

fn pkcs11_pin(c: &Choice) -> Result<Zeroizing<String>, Failure> {
    if let Some(p) = &c.pkcs11_pin_file {
        let s =
            Zeroizing::new(std::fs::read_to_string(p).map_err(|e| Failure::io(p.display(), &e))?);
        return Ok(Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string()));
    }
    std::env::var("ENVOL_PKCS11_PIN")
        .map(Zeroizing::new)
        .map_err(|_| {
            Failure::invalid("the token's PIN is missing")
                .hint("pass --pkcs11-pin-file PATH or set ENVOL_PKCS11_PIN")
        })
}

/// The reference service in its store file, held under the store's lock.
pub struct Store {
    pub kms: LocalKms,
    path: PathBuf,
    root: Zeroizing<[u8; 32]>,
    _lock: File,
}

/// `<store>.lock`, `<store>.audit`, `<store>.new`.
fn beside(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

fn lock(path: &Path) -> Result<File, Failure> {
    let p = beside(path, ".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Failure::io(p.display(), &e))?;
    f.lock().map_err(|e| Failure::io(p.display(), &e))?;
    Ok(f)
}

/// Appends each event as one line to `<store>.audit` and fsyncs it before
/// the audited change happens (a failure fails the command).
struct FileSink(File);

impl AuditSink for FileSink {
    fn record(&mut self, event: &AuditEvent) -> Result<(), AuditSinkError> {
        let mut line = event.to_line();
        line.push('\n');
        self.0
            .write_all(line.as_bytes())
            .and_then(|()| self.0.sync_data())
            .map_err(|_| AuditSinkError)
    }
}

pub fn audit_path(store: &Path) -> PathBuf {
    beside(store, ".audit")
}

fn sink(path: &Path) -> Result<Box<FileSink>, Failure> {
    let p = audit_path(path);
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .map_err(|e| Failure::io(p.display(), &e))?;
    Ok(Box::new(FileSink(f)))
}

/// Takes back into the chain the events a command that crashed after its
/// audit write (and before its store write) left in `<store>.audit`; a torn
/// last line (a crash inside the write, before its fsync) is cut off.
fn resume(kms: &mut LocalKms, path: &Path) -> Result<(), Failure> {
    let p = audit_path(path);
    let mut text = match std::fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Failure::io(p.display(), &e)),
    };
    if !text.is_empty() && !text.ends_with(b"\n") {
        let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        text.truncate(keep);
        OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| {
                f.set_len(keep as u64)?;
                f.sync_all()
            })
            .map_err(|e| Failure::io(p.display(), &e))?;
    }
    let damaged = |e: String| {
        Failure::new(
            "ENVOL_ERR_AUDIT_FAILED",
            format!("the audit trail {} {e}", p.display()),
        )
        .hint("nothing is done until the trail is whole again: restore it from a copy")
    };
    let text = String::from_utf8(text).map_err(|_| damaged("is not text".into()))?;
    let events = parse_lines(&text).map_err(|e| damaged(format!("is damaged: {e}")))?;
    kms.resume_audit(&events)
        .map_err(|e| damaged(format!("does not continue the store's chain: {e}")))?;
    Ok(())
}

impl Store {
    /// Opens (under its lock) an existing store.
    pub fn open(path: &Path, root: &[u8; 32]) -> Result<Store, Failure> {
        let lock = lock(path)?;
        let bytes = std::fs::read(path).map_err(|e| {
            Failure::io(format!("store {}", path.display()), &e)
                .hint("create one with `envol store init`")
        })?;
        let kms = LocalKms::unseal(
            root,
            &bytes,
            Box::new(OsEntropy),
            Box::new(SystemClock),
            Some(sink(path)?),
        )
        .map_err(|e| {
            Failure::new(
                "ENVOL_ERR_SEALED_STORE",
                format!("store {} does not open: {e}", path.display()),
            )
            .hint("is this the right root key?")
        })?;
        let mut kms = kms;
        resume(&mut kms, path)?;
        Ok(Store {
            kms,
            path: path.to_owned(),
            root: Zeroizing::new(*root),
            _lock: lock,
        })
    }

    /// Creates a new, empty store (refusing to replace one).
    pub fn create(path: &Path, root: &[u8; 32]) -> Result<Store, Failure> {
        let lock = lock(path)?;
        if path.exists() {
            return Err(Failure::new(
                "ENVOL_ERR_INVALID_ARGUMENT",
                format!("{} exists already", path.display()),
            )
            .hint("a store is never replaced by init; remove it yourself if you mean it"));
        }
        let trail = audit_path(path);
        if std::fs::metadata(&trail).is_ok_and(|m| m.len() > 0) {
            // Events of an init that crashed before its store was written.
            let mut aside = trail.as_os_str().to_owned();
            aside.push(".orphaned");
            std::fs::rename(&trail, &aside).map_err(|e| Failure::io(trail.display(), &e))?;
        }
        let kms = LocalKms::new(
            Box::new(OsEntropy),
            Box::new(SystemClock),
            Some(sink(path)?),
        );
        Ok(Store {
            kms,
            path: path.to_owned(),
            root: Zeroizing::new(*root),
            _lock: lock,
        })
    }

    /// Seals and replaces the store file atomically; the lock is released
    /// when `self` drops, after the rename.
    pub fn commit(mut self) -> Result<(), Failure> {
        let sealed = self.kms.seal(&self.root).map_err(|e| {
            Failure::new("ENVOL_ERR_SEALED_STORE", format!("sealing the store: {e}"))
        })?;
        let new = beside(&self.path, ".new");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&new)?;
            f.write_all(&sealed)?;
            f.sync_all()?;
            drop(f);
            crash_point("store-written");
            std::fs::rename(&new, &self.path)?;
            let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty());
            File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
        };
        write().map_err(|e| Failure::io(format!("writing {}", self.path.display()), &e))
    }
}

/// Test hook: with `ENVOL_TEST_CRASH_AT=<point>` the process dies there, as
/// a crash (or kill -9) would.
pub fn crash_point(point: &str) {
    if std::env::var("ENVOL_TEST_CRASH_AT").is_ok_and(|p| p == point) {
        std::process::abort();
    }
}
