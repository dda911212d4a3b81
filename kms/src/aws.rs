//! AWS KMS over its own API: JSON over HTTP(S), SigV4-signed.
//!
//! Why `aws-sigv4` and `ureq` rather than the AWS SDK: envol needs four
//! calls (GenerateDataKey, GenerateDataKeyWithoutPlaintext, Decrypt,
//! ReEncrypt, plus Encrypt for small secrets) from a synchronous trait. The
//! SDK brings an async runtime, a connector stack and some two hundred crates
//! into every hypervisor that links envol; the official signer and a small
//! blocking client with rustls do the same job with a fraction of the code,
//! and the retry, timeout and error policy stay ours and testable.
//!
//! Blobs are AWS `CiphertextBlob`s carried opaquely inside envol's framing
//! ([`Algorithm::AwsKms`]) with the master key's id, so Decrypt names the
//! key it expects (AWS refuses a blob made under another key) and a header
//! says which service can open it. AWS binds every blob to the volume's
//! encryption context; envol passes the same context on every call.
//!
//! Every call has a per-attempt timeout; throttling, 5xx answers and
//! transport errors are retried with capped, jittered exponential backoff
//! within a bounded number of attempts and a bounded total time.
//!
//! The `principal` argument of [`Kms`] is not sent: AWS authorises the IAM
//! identity of the credentials (key policy, grants and IAM policies), which
//! is where least privilege lives for this service.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use envol::envelope::{Algorithm, Context, DataKey, WrappedKey, check_key_id};
use envol::kms::{Kms, KmsError};
use envol::xts::KeySize;
use serde_json::{Map, Value, json};
use zeroize::{Zeroize, Zeroizing};

/// Largest response body read from the service.
const MAX_RESPONSE: u64 = 64 * 1024;

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

/// Retries: how many attempts, how long to wait between them, and the most
/// time one call may take in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// First backoff; doubles per retry, with full jitter.
    pub base_delay: Duration,
    /// Longest single backoff.
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first
    /// attempt (the attempt in flight still has its own timeout).
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            budget: Duration::from_secs(10),
        }
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
fn ini_section(text: &str, profile: &str, config_style: bool) -> Vec<(String, String)> {
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

fn lookup<'a>(section: &'a [(String, String)], key: &str) -> Option<&'a str> {
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
fn split_endpoint(endpoint: &str, insecure: bool) -> Result<(String, String), ConfigError> {
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
fn is_loopback(authority: &str) -> bool {
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

/// What the service said when a call failed (no secret is ever in it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// The HTTP status, or 0 for a transport failure.
    pub status: u16,
    /// The AWS error type (e.g. `DisabledException`), or the transport
    /// error's kind.
    pub code: String,
    /// The service's message, if any.
    pub message: String,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

/// How envol reads an AWS error type: the typed error, and whether the call
/// may succeed if retried.
pub fn classify(status: u16, code: &str) -> (KmsError, bool) {
    match code {
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "InvalidGrantTokenException" => (KmsError::AccessDenied, false),
        "NotFoundException" => (KmsError::NotFound, false),
        "DisabledException" => (KmsError::Disabled, false),
        // Pending deletion (or pending import): the key exists but cannot be
        // used; AWS says the same for a key scheduled for deletion.
        "KMSInvalidStateException" => (KmsError::PendingDeletion, false),
        "InvalidCiphertextException" | "IncorrectKeyException" => {
            (KmsError::InvalidCiphertext, false)
        }
        "ValidationException"
        | "InvalidKeyUsageException"
        | "InvalidParameterValue"
        | "SerializationException"
        | "UnsupportedOperationException" => (KmsError::InvalidArgument, false),
        "ThrottlingException"
        | "ThrottledException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "LimitExceededException"
        | "RequestThrottled"
        | "SlowDown"
        | "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "ServiceUnavailable"
        | "InternalFailure" => (KmsError::Unavailable, true),
        _ if status >= 500 || status == 429 => (KmsError::Unavailable, true),
        _ => (KmsError::Unavailable, false),
    }
}

/// AWS KMS as an envol key service.
pub struct AwsKms {
    cfg: AwsConfig,
    agent: ureq::Agent,
    /// The URL posted to and its authority (the signed `host`), split from
    /// the endpoint once.
    url: String,
    authority: String,
    last_error: Option<ServiceError>,
    attempts: u64,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("endpoint", &self.cfg.endpoint)
            .field("region", &self.cfg.region)
            .field("credentials", &self.cfg.credentials)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// A client for `cfg`. Nothing is sent until the first call.
    pub fn new(cfg: AwsConfig) -> Result<AwsKms, ConfigError> {
        let (url, authority) = split_endpoint(&cfg.endpoint, cfg.insecure_cleartext_http)?;
        if cfg.insecure_cleartext_http && url.starts_with("http://") {
            log::warn!(
                "envol AWS KMS at {} in CLEARTEXT: signed requests, session tokens and data keys \
                 cross the network unencrypted (insecure_cleartext_http is set)",
                cfg.endpoint
            );
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(cfg.timeout))
            .timeout_connect(Some(cfg.connect_timeout))
            .max_redirects(0)
            .build()
            .into();
        log::info!(
            "envol AWS KMS at {} ({}), timeout {:?}, up to {} attempts within {:?}",
            cfg.endpoint,
            cfg.region,
            cfg.timeout,
            cfg.retry.max_attempts,
            cfg.retry.budget
        );
        Ok(AwsKms {
            cfg,
            agent,
            url,
            authority,
            last_error: None,
            attempts: 0,
        })
    }

    /// [`AwsKms::new`] with [`AwsConfig::from_env`].
    pub fn from_env() -> Result<AwsKms, ConfigError> {
        AwsKms::new(AwsConfig::from_env()?)
    }

    /// The configuration in use.
    pub fn config(&self) -> &AwsConfig {
        &self.cfg
    }

    /// What the service said on the last failed call (cleared on success).
    pub fn last_error(&self) -> Option<&ServiceError> {
        self.last_error.as_ref()
    }

    /// HTTP attempts made so far, retries included.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// One KMS API call (`TrentService.<action>`) with retries: the JSON
    /// answer, or the typed error with [`AwsKms::last_error`] set. The
    /// building block of the [`Kms`] methods, public for administration
    /// (CreateKey, DisableKey, ...) and tests.
    pub fn call(&mut self, action: &str, body: &Value) -> Result<Value, KmsError> {
        let bytes =
            Zeroizing::new(serde_json::to_vec(body).map_err(|_| KmsError::InvalidArgument)?);
        self.call_bytes(action, &bytes)
    }

    fn call_bytes(&mut self, action: &str, body: &[u8]) -> Result<Value, KmsError> {
        let start = Instant::now();
        let policy = self.cfg.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.attempts += 1;
            let (err, retry) = match self.attempt(action, body) {
                Ok(v) => {
                    self.last_error = None;
                    return Ok(v);
                }
                Err((e, retry)) => (e, retry),
            };
            let kind = classify(err.status, &err.code).0;
            let delay = backoff(policy, attempt);
            let give_up = !retry
                || attempt >= policy.max_attempts.max(1)
                || start.elapsed() + delay > policy.budget;
            log::warn!(
                "envol AWS KMS {action}: {err}{}",
                if give_up { "" } else { "; retrying" }
            );
            self.last_error = Some(err);
            if give_up {
                return Err(kind);
            }
            std::thread::sleep(delay);
        }
    }

    /// One signed POST. On failure, the service error and whether to retry.
    fn attempt(&self, action: &str, body: &[u8]) -> Result<Value, (ServiceError, bool)> {
        let target = format!("TrentService.{action}");
        let payload_hash = sha256_hex(body);
        let headers = [
            ("host", self.authority.as_str()),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let c = &self.cfg.credentials;
        let identity = Credentials::new(
            &c.access_key_id,
            c.secret_access_key.as_str(),
            c.session_token.as_ref().map(|t| t.to_string()),
            None,
            "envol",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.cfg.region)
            .name("kms")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| (transport("SigningFailed"), false))?
            .into();
        // The payload is hashed here so that the signer (and its tracing)
        // never sees the body, which may hold a secret (Encrypt).
        let signable = SignableRequest::new(
            "POST",
            self.url.as_str(),
            headers.iter().map(|(k, v)| (*k, *v)),
            SignableBody::Precomputed(payload_hash),
        )
        .map_err(|_| (transport("SigningFailed"), false))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|_| (transport("SigningFailed"), false))?
            .into_parts();
        let mut req = self
            .agent
            .post(self.url.as_str())
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", target.as_str());
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let mut resp = req.send(body).map_err(|e| (transport_error(&e), true))?;
        let status = resp.status().as_u16();
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(':').next().unwrap_or("").to_string());
        let bytes = Zeroizing::new(
            resp.body_mut()
                .with_config()
                .limit(MAX_RESPONSE)
                .read_to_vec()
                .map_err(|e| (transport_error(&e), true))?,
        );
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status == 200 {
            return value.ok_or_else(|| {
                (
                    ServiceError {
                        status,
                        code: "MalformedResponse".into(),
                        message: "answer is not JSON".into(),
                    },
                    false,
                )
            });
        }
        let field = |k: &str| {
            value
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .map(String::from)
        };
        let code = field("__type")
            .map(|t| t.rsplit('#').next().unwrap_or("").to_string())
            .or(error_type)
            .unwrap_or_else(|| format!("HTTP{status}"));
        let message = field("message")
            .or_else(|| field("Message"))
            .unwrap_or_default();
        let retry = classify(status, &code).1;
        Err((
            ServiceError {
                status,
                code,
                message,
            },
            retry,
        ))
    }

    /// Wraps an AWS answer's `CiphertextBlob` (and `KeyId`) in envol's
    /// framing into `out` (nothing written if it does not fit).
    fn frame(&self, answer: &Value, requested: &str, out: &mut [u8]) -> Result<usize, KmsError> {
        let ct = decode_field(answer, "CiphertextBlob")?;
        let key_id = answer
            .get("KeyId")
            .and_then(Value::as_str)
            .map(short_key_id)
            .filter(|k| check_key_id(k).is_ok())
            .unwrap_or(requested);
        let w = WrappedKey::from_opaque(Algorithm::AwsKms, key_id, &ct)
            .map_err(|_| KmsError::Unavailable)?;
        w.encode(out).map_err(|_| KmsError::BufferTooSmall)
    }

    fn data_key_request(
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
    ) -> Result<Value, KmsError> {
        check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
        Ok(json!({
            "KeyId": key_id,
            "NumberOfBytes": size.key_len(),
            "EncryptionContext": context_json(context),
        }))
    }

    /// Decrypt of an envol-framed AWS blob: the plaintext, zeroized on drop.
    fn decrypt_raw(
        &mut self,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let w = parse_aws(blob)?;
        let mut answer = self.call(
            "Decrypt",
            &json!({
                "CiphertextBlob": B64.encode(w.ciphertext()),
                "KeyId": w.key_id(),
                "EncryptionContext": context_json(context),
            }),
        )?;
        take_plaintext(&mut answer)
    }
}

/// The key's id from an ARN (`arn:aws:kms:...:key/<id>`), or the id itself.
fn short_key_id(arn: &str) -> &str {
    arn.rsplit_once(":key/").map_or(arn, |(_, id)| id)
}

fn parse_aws(blob: &[u8]) -> Result<WrappedKey<'_>, KmsError> {
    WrappedKey::parse(blob)
        .ok()
        .filter(|w| w.algorithm() == Algorithm::AwsKms)
        .ok_or(KmsError::InvalidCiphertext)
}

fn context_json(context: &Context<'_>) -> Value {
    let mut m = Map::new();
    for (k, v) in context.iter() {
        m.insert(k.into(), Value::String(v.into()));
    }
    Value::Object(m)
}

fn decode_field(answer: &Value, field: &str) -> Result<Vec<u8>, KmsError> {
    answer
        .get(field)
        .and_then(Value::as_str)
        .and_then(|s| B64.decode(s).ok())
        .ok_or(KmsError::Unavailable)
}

/// Takes `Plaintext` out of an answer, decodes it and wipes the text.
fn take_plaintext(answer: &mut Value) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let mut text = match answer.get_mut("Plaintext").map(Value::take) {
        Some(Value::String(s)) => s,
        _ => return Err(KmsError::Unavailable),
    };
    let mut plain = Zeroizing::new(Vec::with_capacity(text.len()));
    let ok = B64.decode_vec(text.as_bytes(), &mut plain).is_ok();
    text.zeroize();
    if ok {
        Ok(plain)
    } else {
        Err(KmsError::Unavailable)
    }
}

fn data_key(plain: &[u8], size: KeySize) -> Result<DataKey, KmsError> {
    if plain.len() != size.key_len() {
        return Err(KmsError::Unavailable);
    }
    DataKey::from_bytes(plain).map_err(|_| KmsError::Unavailable)
}

fn transport(code: &str) -> ServiceError {
    ServiceError {
        status: 0,
        code: code.into(),
        message: String::new(),
    }
}

fn transport_error(e: &ureq::Error) -> ServiceError {
    let code = match e {
        ureq::Error::Timeout(_) => "Timeout",
        ureq::Error::Io(_) => "IoError",
        ureq::Error::HostNotFound => "HostNotFound",
        ureq::Error::ConnectionFailed => "ConnectionFailed",
        ureq::Error::BodyExceedsLimit(_) => "ResponseTooLarge",
        _ => "TransportError",
    };
    ServiceError {
        status: 0,
        code: code.into(),
        message: e.to_string(),
    }
}

/// Full-jitter exponential backoff before retry number `attempt` (1-based).
fn backoff(p: RetryPolicy, attempt: u32) -> Duration {
    let exp = p
        .base_delay
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(p.max_delay);
    let mut r = [0u8; 4];
    let frac = if getrandom::fill(&mut r).is_ok() {
        f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX)
    } else {
        1.0
    };
    exp.mul_f64(frac)
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

impl Kms for AwsKms {
    fn generate_data_key(
        &mut self,
        _principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<(DataKey, usize), KmsError> {
        let req = Self::data_key_request(key_id, size, context)?;
        let mut answer = self.call("GenerateDataKey", &req)?;
        let dek = data_key(&take_plaintext(&mut answer)?, size)?;
        let n = self.frame(&answer, key_id, blob_out)?;
        Ok((dek, n))
    }

    fn generate_data_key_without_plaintext(
        &mut self,
        _principal: &str,
        key_id: &str,
        size: KeySize,
        context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let req = Self::data_key_request(key_id, size, context)?;
        let answer = self.call("GenerateDataKeyWithoutPlaintext", &req)?;
        self.frame(&answer, key_id, blob_out)
    }

    fn decrypt_data_key(
        &mut self,
        _principal: &str,
        blob: &[u8],
        context: &Context<'_>,
    ) -> Result<DataKey, KmsError> {
        let plain = self.decrypt_raw(blob, context)?;
        match plain.len() {
            32 | 64 => DataKey::from_bytes(&plain).map_err(|_| KmsError::InvalidCiphertext),
            _ => Err(KmsError::InvalidCiphertext),
        }
    }

    fn re_encrypt(
        &mut self,
        _principal: &str,
        blob: &[u8],
        source_context: &Context<'_>,
        dest_key_id: &str,
        dest_context: &Context<'_>,
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let w = parse_aws(blob)?;
        check_key_id(dest_key_id).map_err(|_| KmsError::InvalidArgument)?;
        let answer = self.call(
            "ReEncrypt",
            &json!({
                "CiphertextBlob": B64.encode(w.ciphertext()),
                "SourceKeyId": w.key_id(),
                "SourceEncryptionContext": context_json(source_context),
                "DestinationKeyId": dest_key_id,
                "DestinationEncryptionContext": context_json(dest_context),
            }),
        )?;
        self.frame(&answer, dest_key_id, blob_out)
    }

    fn encrypt(
        &mut self,
        _principal: &str,
        key_id: &str,
        context: &Context<'_>,
        plaintext: &[u8],
        blob_out: &mut [u8],
    ) -> Result<usize, KmsError> {
        check_key_id(key_id).map_err(|_| KmsError::InvalidArgument)?;
        if plaintext.is_empty() || plaintext.len() > envol::envelope::MAX_SECRET {
            return Err(KmsError::InvalidArgument);
        }
        // The request body holds the secret: built by hand into a buffer
        // that is wiped, never through a `Value` that would not be.
        let head = serde_json::to_string(&json!({
            "KeyId": key_id,
            "EncryptionContext": context_json(context),
        }))
        .map_err(|_| KmsError::InvalidArgument)?;
        let mut body = Zeroizing::new(Vec::with_capacity(head.len() + plaintext.len() * 2 + 16));
        body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        body.extend_from_slice(b",\"Plaintext\":\"");
        let mut b64 = Zeroizing::new(String::new());
        B64.encode_string(plaintext, &mut b64);
        body.extend_from_slice(b64.as_bytes());
        body.extend_from_slice(b"\"}");
        let answer = self.call_bytes("Encrypt", &body)?;
        self.frame(&answer, key_id, blob_out)
    }

    fn decrypt(
        &mut self,
        _principal: &str,
        blob: &[u8],
        context: &Context<'_>,
        out: &mut [u8],
    ) -> Result<usize, KmsError> {
        let plain = self.decrypt_raw(blob, context)?;
        let dst = out.get_mut(..plain.len()).ok_or(KmsError::BufferTooSmall)?;
        dst.copy_from_slice(&plain);
        Ok(plain.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_files_and_precedence() {
        let creds = "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = sdef\n\
                     [ops]\naws_access_key_id=AKIDOPS\naws_secret_access_key=sops\naws_session_token = tok\n";
        let config = "[default]\nregion = eu-west-1\n[profile ops]\nregion=us-east-2\n\
                      endpoint_url = http://127.0.0.1:4566\n";
        let none = |_: &str| None;
        let c = AwsConfig::from_sources(&none, creds, config).unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.endpoint, "https://kms.eu-west-1.amazonaws.com");
        assert_eq!(c.credentials.access_key_id, "AKIDDEF");
        assert_eq!(c.credentials.secret_access_key.as_str(), "sdef");
        assert!(c.credentials.session_token.is_none());

        let ops = |k: &str| (k == "AWS_PROFILE").then(|| "ops".to_string());
        let c = AwsConfig::from_sources(&ops, creds, config).unwrap();
        assert_eq!(
            (c.region.as_str(), c.endpoint.as_str()),
            ("us-east-2", "http://127.0.0.1:4566")
        );
        assert_eq!(c.credentials.access_key_id, "AKIDOPS");
        assert_eq!(
            c.credentials.session_token.as_deref().map(String::as_str),
            Some("tok")
        );

        // The environment wins over the files.
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIDENV".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("senv".into()),
            "AWS_REGION" => Some("ap-south-1".into()),
            "AWS_ENDPOINT_URL_KMS" => Some("http://localhost:9/".into()),
            "AWS_ENDPOINT_URL" => Some("http://ignored:1".into()),
            _ => None,
        };
        let c = AwsConfig::from_sources(&env, creds, config).unwrap();
        assert_eq!(c.credentials.access_key_id, "AKIDENV");
        assert_eq!(
            (c.region.as_str(), c.endpoint.as_str()),
            ("ap-south-1", "http://localhost:9/")
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("senv") && dbg.contains("AKIDENV"), "{dbg}");

        assert_eq!(
            AwsConfig::from_sources(&none, "", "").unwrap_err(),
            ConfigError::NoRegion
        );
        let region_only = |k: &str| (k == "AWS_REGION").then(|| "x".to_string());
        assert_eq!(
            AwsConfig::from_sources(&region_only, "", "").unwrap_err(),
            ConfigError::NoCredentials
        );
        let bad = |k: &str| match k {
            "AWS_REGION" => Some("x".into()),
            "AWS_ENDPOINT_URL" => Some("ftp://h".into()),
            _ => None,
        };
        assert!(matches!(
            AwsConfig::from_sources(&bad, creds, ""),
            Err(ConfigError::BadEndpoint(_))
        ));
    }

    #[test]
    fn endpoints_split() {
        assert_eq!(
            split_endpoint("http://127.0.0.1:5000", false).unwrap(),
            ("http://127.0.0.1:5000/".into(), "127.0.0.1:5000".into())
        );
        assert_eq!(
            split_endpoint("https://kms.eu-west-1.amazonaws.com/", false)
                .unwrap()
                .1,
            "kms.eu-west-1.amazonaws.com"
        );
        for bad in [
            "",
            "kms.amazonaws.com",
            "http://",
            "http://u@h/",
            "https:// h",
        ] {
            assert!(split_endpoint(bad, true).is_err(), "{bad}");
        }
        assert_eq!(
            short_key_id(
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            ),
            "1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        assert_eq!(short_key_id("alias/x"), "alias/x");
    }

    #[test]
    fn cleartext_only_to_loopback_or_when_asked() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://127.1.2.3/",
            "http://localhost:4566",
            "http://LOCALHOST",
            "http://[::1]:8080/",
            "https://10.0.0.1",
            "https://kms.us-east-1.amazonaws.com",
        ] {
            assert!(split_endpoint(ok, false).is_ok(), "{ok}");
        }
        for clear in [
            "http://10.0.0.1",
            "http://kms.us-east-1.amazonaws.com",
            "http://127.0.0.1.evil.example:80",
            "http://localhost.evil.example",
            "http://[::2]:80",
            "http://[::1]x",
            "http://0.0.0.0:5000",
        ] {
            match split_endpoint(clear, false) {
                Err(ConfigError::CleartextEndpoint(e)) => assert_eq!(e, clear),
                other => panic!("{clear}: {other:?}"),
            }
            assert!(
                split_endpoint(clear, true).is_ok() || clear == "http://[::1]x",
                "{clear} with the opt-in"
            );
        }
        let lookup = |name: &str| match name {
            "AWS_REGION" => Some("us-east-1".to_string()),
            "AWS_ACCESS_KEY_ID" => Some("AKID".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            "ENVOL_KMS_ENDPOINT" | "AWS_ENDPOINT_URL_KMS" | "AWS_ENDPOINT_URL" => {
                Some("http://192.0.2.7:4566".to_string())
            }
            _ => None,
        };
        assert!(matches!(
            AwsConfig::from_env_with(&lookup),
            Err(ConfigError::CleartextEndpoint(_))
        ));
        let opted = |name: &str| match name {
            "ENVOL_AWS_INSECURE_CLEARTEXT_HTTP" => Some("1".to_string()),
            other => lookup(other),
        };
        let cfg = AwsConfig::from_env_with(&opted).expect("opt-in");
        assert!(cfg.insecure_cleartext_http);
        assert!(AwsKms::new(cfg).is_ok());
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let d = backoff(p, attempt);
            assert!(d <= p.max_delay);
            assert!(d <= p.base_delay * (1 << (attempt - 1).min(16)));
        }
        let samples: Vec<_> = (0..32).map(|_| backoff(p, 3)).collect();
        assert!(samples.iter().any(|d| *d != samples[0]), "no jitter");
    }

    #[test]
    fn payload_hash_matches_the_sigv4_test_suite() {
        // SHA-256 of the empty payload, as in every SigV4 example request.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
