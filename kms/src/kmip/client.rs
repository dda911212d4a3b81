//! One persistent TLS connection to the server, requests and answers over
//! it, and the retry policy: transport failures drop the connection and
//! are retried on a new one with backoff within the budget; what the
//! server answers is never retried.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use envol::kms::KmsError;
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConfig, ClientConnection, StreamOwned};
use zeroize::Zeroizing;

use super::config::{ConfigError, KmipConfig};
use super::protocol::{self, Answer, Operation, reason};
use super::ttlv::{self, Item};
use crate::retry::{RetryPolicy, backoff};

/// What went wrong on the last failed call (no secret is ever in it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// The KMIP Result Reason, or 0 when the server gave no KMIP answer
    /// (transport, TLS or a malformed response).
    pub reason: u32,
    /// The reason's name, or what failed underneath (`connect`, `tls`,
    /// `io`, `response`).
    pub code: String,
    /// The server's Result Message, or the underlying error.
    pub message: String,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// A failed call: the error for the caller and the KMIP reason (0 if none).
pub(super) struct Refused {
    pub kind: KmsError,
    pub reason: u32,
}

/// A failed attempt below KMIP: the error, and whether a new connection
/// may help.
struct Transport {
    error: ServiceError,
    kind: KmsError,
    retry: bool,
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

pub(super) struct Client {
    tls: Arc<ClientConfig>,
    connect_to: String,
    server_name: ServerName<'static>,
    cfg: KmipConfig,
    conn: Option<Tls>,
    last_error: Option<ServiceError>,
    attempts: u64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("connect_to", &self.connect_to)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(super) fn new(cfg: KmipConfig) -> Result<Client, ConfigError> {
        let (connect_to, server_name) = cfg.endpoint()?;
        let tls = cfg.tls()?;
        Ok(Client {
            tls,
            connect_to,
            server_name,
            cfg,
            conn: None,
            last_error: None,
            attempts: 0,
        })
    }

    pub(super) fn config(&self) -> &KmipConfig {
        &self.cfg
    }

    pub(super) fn last_error(&self) -> Option<&ServiceError> {
        self.last_error.as_ref()
    }

    pub(super) fn attempts(&self) -> u64 {
        self.attempts
    }

    pub(super) fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    pub(super) fn disconnect(&mut self) {
        self.conn = None;
    }

    /// One operation: the response payload, or why not. Transport failures
    /// are retried on a new connection within the retry policy; operations
    /// that are not idempotent are sent on a new connection and never
    /// repeated once sent.
    pub(super) fn call(&mut self, op: Operation, payload: Vec<Item>) -> Result<Item, Refused> {
        let request = protocol::request(op, payload).encode().map_err(|e| {
            self.fail(op, "request", e.to_string(), 0);
            Refused {
                kind: KmsError::InvalidArgument,
                reason: 0,
            }
        })?;
        let policy: RetryPolicy = self.cfg.retry;
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.attempts += 1;
            let t = match self.attempt(op, &request) {
                Ok(answer) => return self.answer(op, &answer),
                Err(t) => t,
            };
            self.conn = None;
            let delay = backoff(policy, attempt);
            let give_up = !t.retry
                || attempt >= policy.max_attempts.max(1)
                || start.elapsed() + delay > policy.budget;
            log::warn!(
                "envol KMIP {}: {}{}",
                op.name(),
                t.error,
                if give_up { "" } else { "; retrying" }
            );
            self.last_error = Some(t.error);
            if give_up {
                return Err(Refused {
                    kind: t.kind,
                    reason: 0,
                });
            }
            std::thread::sleep(delay);
        }
    }

    /// Interprets a response message.
    fn answer(&mut self, op: Operation, bytes: &[u8]) -> Result<Item, Refused> {
        let parsed = Item::decode(bytes)
            .map_err(|e| e.to_string())
            .and_then(|m| protocol::parse_response(&m, op).map_err(|e| e.0.to_string()));
        match parsed {
            Ok(Answer::Success(payload)) => {
                self.last_error = None;
                Ok(payload)
            }
            Ok(Answer::Failure {
                status,
                reason: r,
                message,
            }) => {
                let kind = classify(op, status, r);
                log::debug!(
                    "envol KMIP {}: {} ({message})",
                    op.name(),
                    protocol::reason_name(r)
                );
                self.fail(op, protocol::reason_name(r), message, r);
                Err(Refused { kind, reason: r })
            }
            Err(e) => {
                // A server that answers nonsense: the connection is no
                // longer trusted to be in step.
                self.conn = None;
                log::warn!("envol KMIP {}: malformed response: {e}", op.name());
                self.fail(op, "response", e, 0);
                Err(Refused {
                    kind: KmsError::Unavailable,
                    reason: 0,
                })
            }
        }
    }

    fn fail(&mut self, _op: Operation, code: &str, message: String, reason: u32) {
        self.last_error = Some(ServiceError {
            reason,
            code: code.to_string(),
            message,
        });
    }

    /// One request and its answer's bytes.
    fn attempt(&mut self, op: Operation, request: &[u8]) -> Result<Zeroizing<Vec<u8>>, Transport> {
        if !op.idempotent() {
            // A reused connection may have been closed by the server while
            // idle; then it is unknowable whether the request was served.
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(transport("io", "no connection".into(), true));
        };
        let idempotent = op.idempotent();
        conn.write_all(request)
            .and_then(|()| conn.flush())
            .map_err(|e| io_failure(&e, idempotent))?;
        let mut header = [0u8; ttlv::HEADER];
        conn.read_exact(&mut header)
            .map_err(|e| io_failure(&e, idempotent))?;
        let len = Item::frame_len(&header)
            .filter(|&n| n <= ttlv::MAX_MESSAGE)
            .ok_or_else(|| transport("response", "answer too large".into(), false))?;
        let mut answer = Zeroizing::new(vec![0u8; len]);
        answer[..ttlv::HEADER].copy_from_slice(&header);
        conn.read_exact(&mut answer[ttlv::HEADER..])
            .map_err(|e| io_failure(&e, idempotent))?;
        Ok(answer)
    }

    /// A new TCP connection with the TLS handshake done.
    fn connect(&self) -> Result<Tls, Transport> {
        let addrs = self
            .connect_to
            .to_socket_addrs()
            .map_err(|e| transport("connect", e.to_string(), true))?;
        let mut last = transport("connect", "no address".into(), true);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.cfg.connect_timeout) {
                Ok(sock) => return self.handshake(sock),
                Err(e) => last = transport("connect", e.to_string(), true),
            }
        }
        Err(last)
    }

    fn handshake(&self, mut sock: TcpStream) -> Result<Tls, Transport> {
        let io = |e: io::Error| transport("connect", e.to_string(), true);
        sock.set_read_timeout(Some(self.cfg.timeout)).map_err(io)?;
        sock.set_write_timeout(Some(self.cfg.timeout)).map_err(io)?;
        sock.set_nodelay(true).map_err(io)?;
        let mut conn = ClientConnection::new(self.tls.clone(), self.server_name.clone())
            .map_err(|e| transport("tls", e.to_string(), false))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| io_failure(&e, true))?;
        }
        Ok(StreamOwned::new(conn, sock))
    }
}

fn transport(code: &str, message: String, retry: bool) -> Transport {
    Transport {
        error: ServiceError {
            reason: 0,
            code: code.into(),
            message,
        },
        kind: KmsError::Unavailable,
        retry,
    }
}

/// An I/O error during the handshake or an exchange. TLS alerts saying the
/// server refused this client's certificate are `AccessDenied` and final;
/// other TLS failures (the server's certificate does not verify, no
/// common protocol) are final too; dropped, reset, refused or timed-out
/// connections may be retried when `retry_io`.
fn io_failure(e: &io::Error, retry_io: bool) -> Transport {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::AlertReceived(alert)) => {
            let mut t = transport("tls", format!("server sent alert {alert:?}"), false);
            if refuses_client(*alert) {
                t.kind = KmsError::AccessDenied;
            }
            t
        }
        Some(other) => transport("tls", other.to_string(), false),
        None => transport("io", e.to_string(), retry_io),
    }
}

/// Alerts with which a server turns down the client's certificate.
fn refuses_client(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::CertificateRequired
    )
}

/// The error for a KMIP failure answer. Permission Denied is refined by
/// the caller (a key that is not Active versus a key this client may not
/// use).
fn classify(op: Operation, status: u32, r: u32) -> KmsError {
    if status != 1 {
        // Pending or undone: this client never asks for asynchronous
        // operations, so the server is not behaving as expected.
        return KmsError::Unavailable;
    }
    match r {
        reason::ITEM_NOT_FOUND => KmsError::NotFound,
        reason::AUTHENTICATION_NOT_SUCCESSFUL | reason::PERMISSION_DENIED => KmsError::AccessDenied,
        // A tag that does not verify: spec servers say Cryptographic
        // Failure, PyKMIP General Failure.
        reason::CRYPTOGRAPHIC_FAILURE | reason::GENERAL_FAILURE if op == Operation::Decrypt => {
            KmsError::InvalidCiphertext
        }
        _ => KmsError::Unavailable,
    }
}
