//! What the command prints: for people by default, JSON with `--json`, and
//! one failure type whose status names are the C ABI's (`envol.h`), so an
//! outcome is spelled the same in Rust, C and here.

use std::fmt;

use envol::header::HeaderError;
use envol::kms::KmsError;
use envol::volume::VolumeError;
use serde_json::{Value, json};

/// Why a command failed: exit status 1, this on standard error (or as JSON
/// on standard output with `--json`).
#[derive(Debug)]
pub struct Failure {
    /// The C ABI's status name (`ENVOL_ERR_...`).
    pub status: &'static str,
    /// What went wrong.
    pub message: String,
    /// What to do about it, if there is something.
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(status: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// A bad argument the parser could not see (a size, a file's content).
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new("ENVOL_ERR_INVALID_ARGUMENT", message)
    }

    /// An operating-system error on `what`.
    pub fn io(what: impl fmt::Display, e: &std::io::Error) -> Failure {
        Failure::new("ENVOL_ERR_IO", format!("{what}: {e}"))
    }

    /// A key service's refusal, with what usually helps.
    pub fn kms(e: KmsError, principal: &str, key: Option<&str>) -> Failure {
        let key_text = key.map_or_else(String::new, |k| format!(" key {k}:"));
        let f = Failure::new(e.status_name(), format!("{principal}:{key_text} {e}"));
        match e {
            KmsError::AccessDenied => f.hint(format!(
                "the key policy (or a grant) does not allow {principal} this; \
                 see `envol key get-policy`"
            )),
            KmsError::Disabled => f.hint("an administrator can run `envol key enable`"),
            KmsError::PendingDeletion => {
                f.hint("an administrator can run `envol key cancel-deletion`")
            }
            KmsError::NotFound => f.hint("see `envol key list`"),
            KmsError::KeyInUse => f.hint(
                "the key still protects volumes: retire them, or pass --force to delete anyway",
            ),
            KmsError::Unavailable => f.hint("check the key service's address and credentials"),
            _ => f,
        }
    }

    pub fn volume(e: VolumeError, principal: &str) -> Failure {
        match e {
            VolumeError::Kms(k) => Failure::kms(k, principal, None),
            VolumeError::Header(h) => Failure::header(h),
            VolumeError::Exists => Failure::new(e.status_name(), e.to_string())
                .hint("--overwrite destroys the existing volume and all its data"),
            _ => Failure::new(e.status_name(), e.to_string()),
        }
    }

    pub fn header(e: HeaderError) -> Failure {
        let f = Failure::new(e.status_name(), e.to_string());
        match e {
            HeaderError::BadMagic | HeaderError::BothCorrupt => {
                f.hint("this is not an envol volume, or both header copies are damaged")
            }
            _ => f,
        }
    }
}

/// Where results go.
#[derive(Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// A result: `human` for people, `value` (an object; `"ok": true` is
    /// added) for `--json`.
    pub fn done(&self, human: &str, value: Value) -> Result<(), Failure> {
        if self.json {
            let mut v = value;
            if let Value::Object(m) = &mut v {
                m.insert("ok".into(), Value::Bool(true));
            }
            println!("{v}");
        } else if !human.is_empty() {
            println!("{human}");
        }
        Ok(())
    }

    pub fn fail(&self, f: &Failure) {
        if self.json {
            println!(
                "{}",
                json!({"ok": false, "status": f.status, "message": f.message, "hint": f.hint})
            );
        } else {
            eprintln!("envol: {} ({})", f.message, f.status);
            if let Some(h) = &f.hint {
                eprintln!("  hint: {h}");
            }
        }
    }
}

/// `n` bytes for people: exact below 1 KiB, else one decimal and a binary
/// unit.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A volume id as the encryption context names it: `vol-<32 hex digits>`,
/// the one spelling everywhere (library, C, nbdkit, this command).
pub fn vol_id(id: &[u8; 16]) -> String {
    format!("vol-{}", hex(id))
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_matches_known_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::utc(1_796_271_017), "2026-12-03 04:10:17 UTC");
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(64 << 20), "64.0 MiB");
    }
}
