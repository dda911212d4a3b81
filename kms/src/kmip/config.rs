//! Where and how to reach a KMIP server: its address, the CA that signed
//! its certificate, this client's certificate and key, timeouts and
//! retries — from code or from `ENVOL_KMIP_*` environment variables.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::retry::RetryPolicy;

/// The port KMIP servers listen on unless told otherwise (IANA).
pub const DEFAULT_PORT: u16 = 5696;

/// Environment variables [`KmipConfig::from_env`] reads.
pub const ENV_ADDRESS: &str = "ENVOL_KMIP_ADDRESS";
/// The CA bundle (PEM) that signed the server's certificate.
pub const ENV_CA: &str = "ENVOL_KMIP_CA";
/// This client's certificate chain (PEM).
pub const ENV_CERT: &str = "ENVOL_KMIP_CERT";
/// This client's private key (PEM).
pub const ENV_KEY: &str = "ENVOL_KMIP_KEY";
/// The name the server's certificate must carry, if not the address's host.
pub const ENV_SERVER_NAME: &str = "ENVOL_KMIP_SERVER_NAME";

/// How to reach a KMIP server over mutually authenticated TLS.
#[derive(Clone, Debug)]
pub struct KmipConfig {
    /// `host:port` or `host` (port [`DEFAULT_PORT`]).
    pub address: String,
    /// The DNS name or IP address the server's certificate must be valid
    /// for; `None`: the address's host.
    pub server_name: Option<String>,
    /// PEM file with the CA certificate(s) trusted to sign the server's.
    pub ca: PathBuf,
    /// PEM file with this client's certificate (then any intermediates).
    /// Its subject is the identity the server authorises and records as
    /// the owner of the keys this client creates.
    pub client_cert: PathBuf,
    /// PEM file with this client's private key (PKCS#8, SEC1 or PKCS#1).
    pub client_key: PathBuf,
    /// Timeout of one attempt's reads and writes.
    pub timeout: Duration,
    /// Timeout of establishing a TCP connection.
    pub connect_timeout: Duration,
    /// Retry policy for transport failures (refused, reset, timed out,
    /// dropped connections).
    pub retry: RetryPolicy,
    /// envol principals this service serves; empty means any. The server
    /// only knows this client's certificate (see the module docs).
    pub allowed_principals: Vec<String>,
}

/// Why a configuration is not usable. Messages name files and variables,
/// never key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required environment variable is unset or empty.
    MissingVariable(&'static str),
    /// The address is not `host` or `host:port`.
    BadAddress(String),
    /// The server name is not a DNS name or IP address.
    BadServerName(String),
    /// A PEM file could not be read or holds nothing usable.
    BadPem {
        /// Which file: "CA", "client certificate" or "client key".
        what: &'static str,
        /// Its path.
        path: PathBuf,
    },
    /// rustls refused the certificates or key (for example a key that does
    /// not match the certificate, or an unsupported key type).
    Tls(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MissingVariable(v) => write!(f, "{v} is not set"),
            ConfigError::BadAddress(a) => {
                write!(f, "KMIP address `{a}` is not `host` or `host:port`")
            }
            ConfigError::BadServerName(n) => {
                write!(f, "KMIP server name `{n}` is not a DNS name or IP address")
            }
            ConfigError::BadPem { what, path } => write!(
                f,
                "cannot read the KMIP {what} from {} (a PEM file is expected)",
                path.display()
            ),
            ConfigError::Tls(e) => write!(f, "KMIP TLS setup: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl KmipConfig {
    /// A configuration with default timeouts (5 s per attempt, 3 s to
    /// connect) and retries, serving any principal.
    pub fn new(
        address: impl Into<String>,
        ca: impl Into<PathBuf>,
        client_cert: impl Into<PathBuf>,
        client_key: impl Into<PathBuf>,
    ) -> KmipConfig {
        KmipConfig {
            address: address.into(),
            server_name: None,
            ca: ca.into(),
            client_cert: client_cert.into(),
            client_key: client_key.into(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            retry: RetryPolicy::default(),
            allowed_principals: Vec::new(),
        }
    }

    /// From `ENVOL_KMIP_ADDRESS`, `ENVOL_KMIP_CA`, `ENVOL_KMIP_CERT`,
    /// `ENVOL_KMIP_KEY` and the optional `ENVOL_KMIP_SERVER_NAME`.
    pub fn from_env() -> Result<KmipConfig, ConfigError> {
        KmipConfig::from_env_with(&|v| std::env::var(v).ok())
    }

    /// As [`KmipConfig::from_env`], reading variables through `lookup`.
    pub fn from_env_with(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<KmipConfig, ConfigError> {
        let get = |v: &'static str| {
            lookup(v)
                .filter(|s| !s.is_empty())
                .ok_or(ConfigError::MissingVariable(v))
        };
        let mut cfg = KmipConfig::new(
            get(ENV_ADDRESS)?,
            get(ENV_CA)?,
            get(ENV_CERT)?,
            get(ENV_KEY)?,
        );
        cfg.server_name = lookup(ENV_SERVER_NAME).filter(|s| !s.is_empty());
        Ok(cfg)
    }

    /// Adds `principal` to the allow-list (which, once not empty, refuses
    /// every principal not on it).
    #[must_use]
    pub fn allow_principal(mut self, principal: impl Into<String>) -> KmipConfig {
        self.allowed_principals.push(principal.into());
        self
    }

    /// `host:port` to connect to, and the name to verify.
    pub(super) fn endpoint(&self) -> Result<(String, ServerName<'static>), ConfigError> {
        let bad = || ConfigError::BadAddress(self.address.clone());
        let a = self.address.trim();
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port) = if let Some(rest) = a.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (h, DEFAULT_PORT),
                p => (
                    h,
                    p.strip_prefix(':')
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(bad)?,
                ),
            }
        } else {
            match a.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, p.parse().map_err(|_| bad())?),
                Some(_) => return Err(bad()),
                None => (a, DEFAULT_PORT),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        let name = self.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| ConfigError::BadServerName(name.to_string()))?;
        let connect = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok((connect, server_name))
    }

    /// The TLS client configuration: TLS 1.2 or 1.3, this client's
    /// certificate, the configured CA as the only trust anchor.
    pub(super) fn tls(&self) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
        let pem = |what: &'static str, path: &Path| ConfigError::BadPem {
            what,
            path: path.to_path_buf(),
        };
        let certs = |what: &'static str, path: &Path| {
            let list: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|_| pem(what, path))?
                .collect::<Result<_, _>>()
                .map_err(|_| pem(what, path))?;
            if list.is_empty() {
                return Err(pem(what, path));
            }
            Ok(list)
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in certs("CA", &self.ca)? {
            roots
                .add(c)
                .map_err(|e| ConfigError::Tls(format!("CA certificate: {e}")))?;
        }
        let chain = certs("client certificate", &self.client_cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.client_key)
            .map_err(|_| pem("client key", &self.client_key))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| ConfigError::Tls(e.to_string()))?;
        Ok(Arc::new(config))
    }
}
