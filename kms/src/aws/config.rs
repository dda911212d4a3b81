//! Where and how to reach AWS KMS: credentials, region, endpoint (TLS
//! unless loopback or explicitly asked), timeouts and retries, from code
//! or from the usual AWS environment and files.

use super::*;

/// Static credentials: an access key, its secret and an optional session
/// token. The secret and token are zeroized on drop and never printed.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (not secret; shown in `Debug`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// A session token for temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Where and how to reach AWS KMS.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// The endpoint URL, e.g. `https://kms.eu-west-1.amazonaws.com` or a
    /// compatible service such as `http://127.0.0.1:5000`.
    pub endpoint: String,
    /// The region signed into every request.
    pub region: String,
    /// The credentials requests are signed with.
    pub credentials: AwsCredentials,
    /// Timeout of one attempt, connection to last byte.
    pub timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// Retry policy for throttling and transient failures.
    pub retry: RetryPolicy,
    /// Allow an `http://` endpoint on a host other than this machine's
    /// loopback. Off by default: the signed request, the session token and
    /// the plaintext data keys in answers would cross the network in clear.
    /// `ENVOL_AWS_INSECURE_CLEARTEXT_HTTP=1` sets it from the environment;
    /// each client made with it logs a warning.
    pub insecure_cleartext_http: bool,
}

/// Why a configuration could not be assembled.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No region in `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile.
    NoRegion,
    /// No access key and secret in the environment or the shared files.
    NoCredentials,
    /// The endpoint is not an `http://` or `https://` URL with a host.
    BadEndpoint(String),
    /// The endpoint is `http://` to a host that is not this machine's
    /// loopback, and cleartext was not allowed explicitly.
    CleartextEndpoint(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoRegion => f.write_str(
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the profile)",
            ),
            ConfigError::NoCredentials => f.write_str(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 or aws_access_key_id/aws_secret_access_key in the profile",
            ),
            ConfigError::BadEndpoint(e) => write!(f, "bad KMS endpoint URL {e:?}"),
            ConfigError::CleartextEndpoint(e) => write!(
                f,
                "refusing cleartext KMS endpoint {e:?}: requests, session tokens and data keys \
                 would cross the network unencrypted; use https:// (http:// is allowed only to \
                 localhost/127.0.0.0/8/[::1], or with ENVOL_AWS_INSECURE_CLEARTEXT_HTTP=1)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl AwsConfig {
    /// A configuration with static credentials and the defaults for the
    /// rest: a 5 s timeout per attempt, 2 s to connect, the default retry
    /// policy, cleartext refused (except to loopback).
    pub fn new(
        endpoint: impl Into<String>,
        region: impl Into<String>,
        credentials: AwsCredentials,
    ) -> AwsConfig {
        AwsConfig {
            endpoint: endpoint.into(),
            region: region.into(),
            credentials,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            insecure_cleartext_http: false,
        }
    }

    /// The configuration the AWS tools would use in this process:
    /// environment first (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
    /// `AWS_ENDPOINT_URL_KMS`/`AWS_ENDPOINT_URL`), then the profile
    /// `AWS_PROFILE` (default `default`) of the shared files
    /// (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`;
    /// `AWS_CONFIG_FILE`, default `~/.aws/config`). Without an endpoint,
    /// `https://kms.<region>.amazonaws.com`. An `http://` endpoint is
    /// refused ([`ConfigError::CleartextEndpoint`]) unless it is this
    /// machine's loopback or `ENVOL_AWS_INSECURE_CLEARTEXT_HTTP=1`. Every
    /// field can be overridden afterwards.
    pub fn from_env() -> Result<AwsConfig, ConfigError> {
        Self::from_env_with(&|_| None)
    }

    /// [`AwsConfig::from_env`] where `overrides` answers first for any
    /// variable name it knows (the C ABI passes its arguments this way).
    pub fn from_env_with(
        overrides: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AwsConfig, ConfigError> {
        let env =
            |k: &str| overrides(k).or_else(|| std::env::var(k).ok().filter(|v| !v.is_empty()));
        let home = env("HOME").unwrap_or_default();
        let creds_path = env("AWS_SHARED_CREDENTIALS_FILE")
            .unwrap_or_else(|| format!("{home}/.aws/credentials"));
        let config_path = env("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/.aws/config"));
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(Zeroizing::new)
                .unwrap_or_default()
        };
        let creds = read(&creds_path);
        let config = read(&config_path);
        Self::from_sources(&env, &creds, &config)
    }

    /// [`AwsConfig::from_env`] over given sources: a variable lookup and the
    /// texts of the shared credentials and config files.
    pub fn from_sources(
        env: &dyn Fn(&str) -> Option<String>,
        credentials_file: &str,
        config_file: &str,
    ) -> Result<AwsConfig, ConfigError> {
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let cred_section = ini_section(credentials_file, &profile, false);
        let conf_section = ini_section(config_file, &profile, true);
        let from_files = |k: &str| {
            lookup(&cred_section, k)
                .or_else(|| lookup(&conf_section, k))
                .map(String::from)
        };
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| lookup(&conf_section, "region").map(String::from))
            .ok_or(ConfigError::NoRegion)?;
        let (akid, secret, token) = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(a), Some(s)) => (a, s, env("AWS_SESSION_TOKEN")),
            _ => (
                from_files("aws_access_key_id").ok_or(ConfigError::NoCredentials)?,
                from_files("aws_secret_access_key").ok_or(ConfigError::NoCredentials)?,
                from_files("aws_session_token"),
            ),
        };
        let endpoint = env("AWS_ENDPOINT_URL_KMS")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| lookup(&conf_section, "endpoint_url").map(String::from))
            .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com"));
        let insecure_cleartext_http =
            env("ENVOL_AWS_INSECURE_CLEARTEXT_HTTP").as_deref() == Some("1");
        split_endpoint(&endpoint, insecure_cleartext_http)?;
        let credentials = AwsCredentials {
            access_key_id: akid,
            secret_access_key: Zeroizing::new(secret),
            session_token: token.map(Zeroizing::new),
        };
        Ok(AwsConfig {
            insecure_cleartext_http,
            ..AwsConfig::new(endpoint, region, credentials)
        })
    }
}

/// The `key = value` lines of one profile of an AWS shared file. Config
/// files name profiles `[profile NAME]` (and `[default]`), credentials
/// files `[NAME]`.
pub(super) fn ini_section(text: &str, profile: &str, config_style: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            let name = if config_style && name != "default" {
                name.strip_prefix("profile ").map(str::trim).unwrap_or("")
            } else {
                name
            };
            inside = name == profile;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

pub(super) fn lookup<'a>(section: &'a [(String, String)], key: &str) -> Option<&'a str> {
    section
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `scheme://authority[/...]` → the URL to post to and the authority.
/// `http://` is refused unless the host is this machine's loopback or
/// `insecure` says cleartext is wanted.
pub(super) fn split_endpoint(
    endpoint: &str,
    insecure: bool,
) -> Result<(String, String), ConfigError> {
    let bad = || ConfigError::BadEndpoint(endpoint.into());
    let (rest, tls) = match endpoint.strip_prefix("https://") {
        Some(r) => (r, true),
        None => (endpoint.strip_prefix("http://").ok_or_else(bad)?, false),
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
        return Err(bad());
    }
    if !tls && !insecure && !is_loopback(authority) {
        return Err(ConfigError::CleartextEndpoint(endpoint.into()));
    }
    let scheme_len = endpoint.len() - rest.len();
    let url = format!("{}{}/", &endpoint[..scheme_len], authority);
    Ok((url, authority.to_string()))
}

/// Whether an authority (`host[:port]`) names this machine's loopback:
/// `localhost`, an address in 127.0.0.0/8, or `[::1]`.
pub(super) fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) if rest.is_empty() || rest.starts_with(':') => h,
            _ => return false,
        },
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
