//! `envol`: keys, grants, volumes and audit from a shell, on the same key
//! services as the library (the reference service in a sealed store file,
//! AWS KMS, a PKCS#11 token).
//!
//! Exit status: 0 done, 1 refused or failed (the message says why and what
//! to do), 2 usage error. `--json` prints one JSON object per command on
//! standard output, failures included.

mod keys;
mod out;
mod service;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::out::{Failure, Out};
use crate::service::Choice;

/// envol: envelope-encrypted XTS-AES volumes and their key services.
#[derive(Parser)]
#[command(name = "envol", version, about, max_term_width = 100)]
struct Cli {
    /// One JSON object on standard output instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    /// Who is asking, as key policies name principals.
    #[arg(long, global = true, env = "ENVOL_PRINCIPAL")]
    principal: Option<String>,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(subcommand)]
    command: Command,
}

/// Which key service (default: the reference service in --store).
#[derive(Args, Clone)]
struct ServiceArgs {
    /// Key service: local (a sealed store file), aws, pkcs11 or kmip (the
    /// server named by ENVOL_KMIP_ADDRESS, ENVOL_KMIP_CA, ENVOL_KMIP_CERT
    /// and ENVOL_KMIP_KEY).
    #[arg(long, global = true, env = "ENVOL_KMS")]
    kms: Option<String>,
    /// The reference service's sealed store file.
    #[arg(long, global = true, env = "ENVOL_STORE")]
    store: Option<PathBuf>,
    /// File holding the store's root key (64 hex digits or 32 bytes);
    /// or set ENVOL_ROOT_KEY to the hex digits. Never on the command line.
    #[arg(long, global = true, env = "ENVOL_ROOT_KEY_FILE")]
    root_key_file: Option<PathBuf>,
    /// PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, global = true, env = "ENVOL_PKCS11_MODULE")]
    pkcs11_module: Option<PathBuf>,
    /// PKCS#11 token label.
    #[arg(long, global = true, env = "ENVOL_PKCS11_TOKEN")]
    pkcs11_token: Option<String>,
    /// File holding the token's user PIN (or set ENVOL_PKCS11_PIN).
    #[arg(long, global = true)]
    pkcs11_pin_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// The reference service's store file.
    #[command(subcommand)]
    Store(keys::StoreCmd),
    /// Master keys: create, describe, list, policies, state, rotation, deletion.
    #[command(subcommand)]
    Key(keys::KeyCmd),
    /// Grants on a master key.
    #[command(subcommand)]
    Grant(keys::GrantCmd),
    /// Volumes: create, inspect, check, rewrap, retire, import, export, dm-crypt.
    #[command(subcommand)]
    Volume(volumes::VolumeCmd),
    /// The reference service's audit trail.
    #[command(subcommand)]
    Audit(keys::AuditCmd),
}

/// What every command gets.
pub(crate) struct Ctx {
    pub(crate) out: Out,
    pub(crate) principal: Option<String>,
    pub(crate) choice: Choice,
}

impl Ctx {
    pub(crate) fn principal(&self) -> Result<&str, Failure> {
        self.principal.as_deref().ok_or_else(|| {
            Failure::invalid("no principal given")
                .hint("pass --principal NAME (or set ENVOL_PRINCIPAL): who is asking")
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let s = cli.service;
    let ctx = Ctx {
        out: Out { json: cli.json },
        principal: cli.principal,
        choice: Choice {
            kms: s.kms,
            store: s.store,
            root_key_file: s.root_key_file,
            pkcs11_module: s.pkcs11_module,
            pkcs11_token: s.pkcs11_token,
            pkcs11_pin_file: s.pkcs11_pin_file,
        },
    };
    let result = match cli.command {
        Command::Store(c) => keys::store(&ctx, c),
        Command::Key(c) => keys::key(&ctx, c),
        Command::Grant(c) => keys::grant(&ctx, c),
        Command::Volume(c) => volumes::run(&ctx, c),
        Command::Audit(c) => keys::audit(&ctx, c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            ctx.out.fail(&f);
            ExitCode::from(1)
        }
    }
}
