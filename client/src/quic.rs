//! Sending one request over QUIC to a pinned host, and opening its answer.
//!
//! The host's TLS certificate is trusted if, and only if, its SHA-256 equals the pinned one;
//! names and CAs play no part. The request itself is sealed to the host's crypto_box key, so even
//! a wrongly pinned certificate would not expose or let anyone forge a request.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sesame_proto::{
    Domain, Envelope, FrameKind, FrameReader, MAGIC, MAX_ENVELOPE_LEN, Progress, ProtoError, Request,
    Response, Sealer,
};
use sha2::{Digest, Sha256};

use crate::HostEntry;
use crate::stream::ProgressOpener;

/// The ALPN id of sesame over QUIC.
pub const ALPN: &[u8] = b"sesame/1";
/// The TLS server name used; the pin, not the name, is checked.
pub const SERVER_NAME: &str = "sesame";

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address did not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// The host's certificate is not the pinned one.
    #[error(
        "the host's TLS certificate does not match the pinned fingerprint (pinned {pinned}, presented {presented}); refusing to talk to it"
    )]
    CertMismatch {
        /// What hosts.toml says.
        pinned: String,
        /// What the host presented.
        presented: String,
    },
    /// Connecting or talking QUIC failed.
    #[error("connection to {addr}: {message}")]
    Connection {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        message: String,
    },
    /// The host closed the stream without answering: it did not accept the request as
    /// authentic (unknown client key, or a key it no longer trusts), or it speaks another wire
    /// format.
    #[error(
        "no answer from the host: it did not accept this client's key (not enrolled, or removed), the request is a duplicate of one still running, or the host runs a sesamed too old for this client's wire format (SSM2)"
    )]
    NoAnswer,
    /// The host has no route of the asked-for kind.
    #[error("the host is not set up for {0}; see `sesame host add --help`")]
    NoRoute(&'static str),
    /// An SQS call failed (network, credentials, permissions, a missing queue).
    #[error("sqs: {0}")]
    Sqs(#[from] sesame_sqs::SqsError),
    /// Nothing came back in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer could not be opened or parsed.
    #[error("bad response: {0}")]
    BadResponse(#[from] ProtoError),
    /// The answer is for another request.
    #[error("response is for request {got}, not {expected}")]
    WrongId {
        /// Our request id.
        expected: String,
        /// The response's id.
        got: String,
    },
}

/// Sends `request` to `host` on a new connection made through `dialer`, sealed with the
/// client's `sealer`, and returns the host's response.
pub async fn send_request(
    dialer: &Dialer,
    host: &HostEntry,
    sealer: &Sealer,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let sealed = seal_request(host, sealer, request)?;
    let session = tokio::time::timeout(timeout, Session::connect_via(dialer, host))
        .await
        .map_err(|_| ClientError::Timeout(timeout))??;
    let reply = session.exchange(&sealed, timeout).await;
    session.close().await;
    open_response(host, sealer, request, &reply?)
}

/// Sends `request`, which asks for its output as it comes, to `host` over QUIC: each chunk the
/// host sends ahead of its answer is opened, checked ([`ProgressOpener`]) and handed to
/// `on_progress` as it arrives; then the answer is returned, as [`send_request`] returns it.
pub async fn send_request_streaming(
    dialer: &Dialer,
    host: &HostEntry,
    sealer: &Sealer,
    request: &Request,
    timeout: Duration,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Response, ClientError> {
    let sealed = seal_request(host, sealer, request)?;
    let session = tokio::time::timeout(timeout, Session::connect_via(dialer, host))
        .await
        .map_err(|_| ClientError::Timeout(timeout))??;
    let mut opener = ProgressOpener::new(host, sealer, request);
    let reply = session
        .exchange_streaming(&sealed, timeout, |chunk| {
            on_progress(&opener.open(chunk)?);
            Ok(())
        })
        .await;
    session.close().await;
    open_response(host, sealer, request, &reply?)
}

/// Seals `request` to `host` as a request (the direction the host opens), whatever carries it.
pub fn seal_request(host: &HostEntry, sealer: &Sealer, request: &Request) -> Result<Vec<u8>, ClientError> {
    Ok(sealer.seal(
        Domain::Request,
        &host.key,
        &mut rand_core::OsRng,
        &request.encode(),
    )?)
}

/// Opens `reply`, which must be an answer ([`Domain::Response`]) sealed by `host` to `request`'s
/// id, and nothing else: not a request turned back at this client, not an answer to another id.
pub fn open_response(
    host: &HostEntry,
    sealer: &Sealer,
    request: &Request,
    reply: &[u8],
) -> Result<Response, ClientError> {
    let envelope = Envelope::decode(reply)?;
    let plaintext = sealer.open(Domain::Response, &envelope, |k| *k == host.key)?;
    let response = Response::decode(&plaintext)?;
    if response.id != request.id {
        return Err(ClientError::WrongId {
            expected: request.id.to_string(),
            got: response.id.to_string(),
        });
    }
    Ok(response)
}

/// Sends already-sealed bytes to `host` on a new connection, from a socket of its own, and
/// returns the raw answer (never empty).
pub async fn exchange(host: &HostEntry, sealed: &[u8], timeout: Duration) -> Result<Vec<u8>, ClientError> {
    let session = tokio::time::timeout(timeout, Session::connect(host))
        .await
        .map_err(|_| ClientError::Timeout(timeout))??;
    let reply = session.exchange(sealed, timeout).await;
    session.close().await;
    reply
}

/// One QUIC connection to a pinned host, for many requests (one stream each).
#[derive(Debug)]
pub struct Session {
    /// Keeps the socket and its driver alive for the connection.
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    addr: SocketAddr,
}

/// Where this client's QUIC connections leave from: one UDP socket per address family, made at
/// the first connection and shared by every connection made through the dialer, with one
/// driver task and one receive buffer. A socket (a quinn endpoint) per connection costs
/// megabytes of receive buffer each while it lives: on 10,000 hosts the client peaked at
/// 410 MiB with 32 at once, 1.9 GiB with 256 (bench/fleet). Each connection still checks its
/// own host's pinned certificate (its own client configuration).
#[derive(Debug, Default)]
pub struct Dialer {
    v4: Mutex<Option<quinn::Endpoint>>,
    v6: Mutex<Option<quinn::Endpoint>>,
}

impl Dialer {
    /// The endpoint for connections to `addr`, made on the current runtime the first time.
    fn endpoint(&self, addr: SocketAddr) -> Result<quinn::Endpoint, ClientError> {
        let err = |message: String| ClientError::Connection { addr, message };
        let (slot, bind) = if addr.is_ipv6() {
            (&self.v6, SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)))
        } else {
            (&self.v4, SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)))
        };
        let mut slot = slot
            .lock()
            .map_err(|_| err("the dialer's lock is poisoned".into()))?;
        if let Some(endpoint) = &*slot {
            return Ok(endpoint.clone());
        }
        let socket = std::net::UdpSocket::bind(bind).map_err(|e| err(e.to_string()))?;
        // Every host's handshake answers on this one socket: with the kernel's default receive
        // buffer (208 KiB here) 256 at once overflowed it (RcvbufErrors), and each datagram
        // dropped costs a retransmission timeout: seconds of tail, and some hosts no answer
        // (bench/fleet, 10,000 hosts). The kernel caps the size at net.core.rmem_max; a smaller
        // buffer than asked for still works, so a refusal is not an error.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, RECEIVE_BUFFER);
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| err(e.to_string()))?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }
}

/// The receive buffer asked for the dialer's socket, bytes.
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

impl Session {
    /// Connects to `host` from a socket of its own, checking its certificate against the pin.
    pub async fn connect(host: &HostEntry) -> Result<Self, ClientError> {
        Self::connect_via(&Dialer::default(), host).await
    }

    /// Connects to `host` through `dialer`'s socket, checking its certificate against the pin.
    pub async fn connect_via(dialer: &Dialer, host: &HostEntry) -> Result<Self, ClientError> {
        let (addr_text, pin) = host.quic().ok_or(ClientError::NoRoute("QUIC (no addr)"))?;
        let addr = addr_text
            .to_socket_addrs()
            .map_err(|_| ClientError::Resolve(addr_text.to_owned()))?
            .next()
            .ok_or_else(|| ClientError::Resolve(addr_text.to_owned()))?;
        let verifier = Arc::new(PinnedCert::new(pin));
        let config = client_config(addr, Arc::clone(&verifier))?;
        let endpoint = dialer.endpoint(addr)?;
        let conn_err = |message: String| ClientError::Connection { addr, message };
        let connecting = endpoint
            .connect_with(config, addr, SERVER_NAME)
            .map_err(|e| conn_err(e.to_string()))?;
        match connecting.await {
            Ok(conn) => Ok(Self {
                _endpoint: endpoint,
                conn,
                addr,
            }),
            Err(e) => match verifier.mismatch() {
                Some(presented) => Err(ClientError::CertMismatch {
                    pinned: pin.to_owned(),
                    presented,
                }),
                None => Err(conn_err(e.to_string())),
            },
        }
    }

    /// Sends sealed bytes on a new stream and returns the raw answer (never empty).
    pub async fn exchange(&self, sealed: &[u8], timeout: Duration) -> Result<Vec<u8>, ClientError> {
        self.within(timeout, async {
            let mut recv = self.send_on_new_stream(sealed).await?;
            recv.read_to_end(MAX_ENVELOPE_LEN)
                .await
                .map_err(|e| self.connection_error(e))
        })
        .await
    }

    /// Sends sealed bytes on a new stream and returns the sealed answer, handing each sealed
    /// chunk of output the host frames ahead of it to `on_chunk` as it arrives. A host that sends
    /// no chunk answers with the bare envelope (an older host, or a command that wrote nothing).
    pub async fn exchange_streaming(
        &self,
        sealed: &[u8],
        timeout: Duration,
        mut on_chunk: impl FnMut(&[u8]) -> Result<(), ClientError>,
    ) -> Result<Vec<u8>, ClientError> {
        self.within(timeout, async {
            let mut recv = self.send_on_new_stream(sealed).await?;
            let mut frames = FrameReader::new();
            let (mut bare, mut answer): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
            let mut first = true;
            while let Some(chunk) = recv
                .read_chunk(MAX_ENVELOPE_LEN, true)
                .await
                .map_err(|e| self.connection_error(e))?
            {
                let bytes = chunk.bytes;
                if let Some(b) = bare.as_mut() {
                    if b.len() + bytes.len() > MAX_ENVELOPE_LEN {
                        return Err(ClientError::BadResponse(ProtoError::Oversize {
                            len: b.len() + bytes.len(),
                        }));
                    }
                    b.extend_from_slice(&bytes);
                    continue;
                }
                // An envelope starts with its magic; a frame never does.
                if std::mem::take(&mut first) && bytes.first() == MAGIC.first() {
                    bare = Some(bytes.to_vec());
                    continue;
                }
                frames.push(&bytes);
                while let Some(frame) = frames.next_frame()? {
                    match frame.kind {
                        FrameKind::Progress => on_chunk(&frame.envelope)?,
                        FrameKind::Response => answer = Some(frame.envelope),
                    }
                }
            }
            Ok(bare.or(answer).unwrap_or_default())
        })
        .await
    }

    /// Opens a stream, writes `sealed` on it and finishes the sending side; the answer is read
    /// from the stream returned.
    async fn send_on_new_stream(&self, sealed: &[u8]) -> Result<quinn::RecvStream, ClientError> {
        let (mut send, recv) = self.conn.open_bi().await.map_err(|e| self.connection_error(e))?;
        send.write_all(sealed)
            .await
            .map_err(|e| self.connection_error(e))?;
        send.finish().map_err(|e| self.connection_error(e))?;
        Ok(recv)
    }

    /// The answer `exchange` reads, within `timeout`; an empty one is no answer.
    async fn within(
        &self,
        timeout: Duration,
        exchange: impl Future<Output = Result<Vec<u8>, ClientError>>,
    ) -> Result<Vec<u8>, ClientError> {
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        if reply.is_empty() {
            return Err(ClientError::NoAnswer);
        }
        Ok(reply)
    }

    /// A failure of this connection, as the client reports it.
    fn connection_error(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Connection {
            addr: self.addr,
            message: e.to_string(),
        }
    }

    /// Closes the connection. The CONNECTION_CLOSE frame is handed to the socket before this
    /// returns; it does not wait out QUIC's draining period (3 PTOs, ~80 ms measured on
    /// loopback), which the host does not need.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"done");
        // Let the endpoint driver (a task on this runtime) transmit the close.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }
}

/// The QUIC client configuration for one connection to `addr`: TLS 1.3 and sesame's ALPN,
/// trusting only the certificate `verifier` pins.
fn client_config(addr: SocketAddr, verifier: Arc<PinnedCert>) -> Result<quinn::ClientConfig, ClientError> {
    let err = |message: String| ClientError::Connection { addr, message };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| err(e.to_string()))?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// Trusts exactly one certificate, by SHA-256; remembers what a mismatching host presented.
#[derive(Debug)]
struct PinnedCert {
    pinned: String,
    presented: Mutex<Option<String>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl PinnedCert {
    fn new(pinned: &str) -> Self {
        Self {
            pinned: pinned.to_ascii_lowercase(),
            presented: Mutex::new(None),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    fn mismatch(&self) -> Option<String> {
        self.presented.lock().ok()?.clone()
    }
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = hex::encode(Sha256::digest(end_entity.as_ref()));
        if presented == self.pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            if let Ok(mut slot) = self.presented.lock() {
                *slot = Some(presented);
            }
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;
    use sesame_proto::{ErrorCode, RequestId, SecretKey};

    use super::*;

    /// Issue 19 (5): an answer is accepted only for this client's own request id; the all-zero
    /// id a daemon gives a request it cannot read is no exception (anyone's unreadable request
    /// has it, so its answer could stand in for any other).
    #[test]
    fn an_answer_to_another_id_is_refused_even_the_all_zero_one() {
        let host = Sealer::new(SecretKey::generate(&mut OsRng));
        let client = Sealer::new(SecretKey::generate(&mut OsRng));
        let entry = HostEntry::new(host.public_key());
        let request = Request::new(&mut OsRng, 1, "web", None, "echo", vec![]);
        for id in [RequestId::from_bytes([0; 16]), RequestId::random(&mut OsRng)] {
            let answer = Response::error(id, ErrorCode::MalformedRequest, "unreadable");
            let sealed = host
                .seal(
                    Domain::Response,
                    &client.public_key(),
                    &mut OsRng,
                    &answer.encode(),
                )
                .expect("seal");
            let got = open_response(&entry, &client, &request, &sealed);
            assert!(matches!(got, Err(ClientError::WrongId { .. })), "{id}: {got:?}");
        }
        let answer = Response::ok(request.id, "out".into(), 1);
        let sealed = host
            .seal(
                Domain::Response,
                &client.public_key(),
                &mut OsRng,
                &answer.encode(),
            )
            .expect("seal");
        assert_eq!(
            open_response(&entry, &client, &request, &sealed).expect("ours"),
            answer
        );
    }
}
