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

mod config;

pub use crate::retry::RetryPolicy;
use crate::retry::backoff;
use config::*;
pub use config::{AwsConfig, AwsCredentials, ConfigError};

/// Largest response body read from the service.
const MAX_RESPONSE: u64 = 64 * 1024;

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
mod tests;
