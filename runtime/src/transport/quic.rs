//! QUIC transport (quinn + rustls, TLS 1.3 only). One request per bidirectional stream: the
//! client writes one envelope and finishes its side; the daemon answers with one sealed
//! response and finishes, or finishes with nothing when the input never authenticated. A request
//! that asks for its output as it comes ([`sesame_proto::Request::stream`]) and produces some
//! gets it as frames ([`sesame_proto::Frame`]): sealed progress chunks as they are made, then the
//! sealed response.
//!
//! The TLS certificate is self-signed; clients pin its SHA-256. TLS hides the traffic pattern and
//! gives the client a reason to trust the port it talks to, but authentication and secrecy of
//! requests come from the crypto_box envelope, end to end.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use sesame_proto::{Frame, FrameKind, MAX_ENVELOPE_LEN, ProtoError};
use tokio::sync::watch;

use crate::identity::HostIdentity;
use crate::progress::ProgressChannel;
use crate::runner::{Peer, Runner};

/// How long a client may take to send its request once it opened a stream.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams one connection may have open at once.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// A connection with no traffic for this long is closed.
pub const IDLE_TIMEOUT_MS: u32 = 30_000;
/// Connections the daemon keeps open at once; more are refused.
pub const MAX_CONNECTIONS: usize = 4096;

/// A bound QUIC listener.
#[derive(Debug)]
pub struct QuicServer {
    endpoint: quinn::Endpoint,
}

/// The listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// TLS configuration (certificate or key unusable).
    #[error("TLS setup: {0}")]
    Tls(String),
    /// Binding the UDP socket.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The daemon's QUIC settings: TLS 1.3 only with the host's certificate, sesame's ALPN, the
/// stream and idle limits above. Public so that the benchmark's floor (a bare QUIC echo) runs
/// with exactly these settings.
pub fn server_config(identity: &HostIdentity) -> Result<quinn::ServerConfig, QuicError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| QuicError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], identity.tls_key.clone_key())
        .map_err(|e| QuicError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![super::ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| QuicError::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(MAX_STREAMS_PER_CONNECTION.into())
        .max_concurrent_uni_streams(0u8.into())
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
            IDLE_TIMEOUT_MS,
        ))));
    server.transport_config(Arc::new(transport));
    Ok(server)
}

impl QuicServer {
    /// Binds `addr` with the host's certificate. Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr, identity: &HostIdentity) -> Result<Self, QuicError> {
        let endpoint = quinn::Endpoint::server(server_config(identity)?, addr)
            .map_err(|source| QuicError::Bind { addr, source })?;
        Ok(Self { endpoint })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Serves until `shutdown` turns true, then stops accepting and waits (up to `drain`) for
    /// requests in flight to finish.
    pub async fn serve(self, runner: Arc<Runner>, mut shutdown: watch::Receiver<bool>, drain: Duration) {
        // One more strong count for every answer owed: a stream whose request has been read
        // holds one until its answer is written and acknowledged. The runner's count alone
        // reaches zero when the handler returns, before the answer is on its way, and closing
        // the endpoint then cut answers off ("connection lost").
        let owed = Arc::new(());
        loop {
            tokio::select! {
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    if self.endpoint.open_connections() >= MAX_CONNECTIONS {
                        incoming.refuse();
                        continue;
                    }
                    tokio::spawn(connection(incoming, Arc::clone(&runner), Arc::downgrade(&owed)));
                }
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        self.endpoint.set_server_config(None);
        let _ = tokio::time::timeout(drain, async {
            while runner.in_flight() > 0 || Arc::strong_count(&owed) > 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        self.endpoint.close(0u32.into(), b"shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Serves one connection's streams; `owed` is the server's count of answers owed.
async fn connection(incoming: quinn::Incoming, runner: Arc<Runner>, owed: Weak<()>) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, "handshake failed: {e}");
            return;
        }
    };
    let peer = Peer {
        transport: "quic",
        source_ip: Some(remote.ip().to_canonical()),
        progress: None,
    };
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(stream(
                    send,
                    recv,
                    peer.clone(),
                    Arc::clone(&runner),
                    owed.clone(),
                ));
            }
            Err(e) => {
                tracing::debug!(%remote, "connection ended: {e}");
                return;
            }
        }
    }
}

async fn stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: Peer,
    runner: Arc<Runner>,
    owed: Weak<()>,
) {
    let bytes = match tokio::time::timeout(READ_TIMEOUT, recv.read_to_end(MAX_ENVELOPE_LEN)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(quinn::ReadToEndError::TooLong)) => {
            runner.reject_unauthenticated(
                crate::now_ms(),
                &peer,
                &ProtoError::Oversize {
                    len: MAX_ENVELOPE_LEN + 1,
                },
            );
            let _ = recv.stop(0u32.into());
            let _ = send.finish();
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(source = ?peer.source_ip, "reading request: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(source = ?peer.source_ip, "request not sent within {READ_TIMEOUT:?}");
            let _ = recv.stop(0u32.into());
            return;
        }
    };
    // From here an answer is owed: a stopping server waits for it to be delivered. (None left:
    // the server has stopped waiting; the answer is still tried.)
    let _owed = owed.upgrade();
    // The request's output as it comes, when it asks for it: each chunk a frame written as soon
    // as the module produces it, the answer the last frame. A client that asked for nothing (or a
    // request that streamed nothing) gets the bare sealed answer, as before.
    let (channel, mut frames) = ProgressChannel::new();
    let peer = Peer {
        progress: Some(channel),
        ..peer
    };
    let mut handling = tokio::task::spawn_blocking(move || runner.handle(crate::now_ms(), &bytes, &peer));
    let mut framed = false;
    let mut writing = true;
    let reply = loop {
        tokio::select! {
            biased;
            Some(frame) = frames.recv(), if writing => {
                framed = true;
                if let Err(e) = send.write_all(&frame).await {
                    // The client is gone: stop reading frames, so the module is not held up.
                    tracing::debug!("writing progress: {e}");
                    writing = false;
                    frames.close();
                }
            }
            reply = &mut handling => break reply,
        }
    };
    // Frames sent just before the answer.
    while writing && let Ok(frame) = frames.try_recv() {
        framed = true;
        if send.write_all(&frame).await.is_err() {
            writing = false;
        }
    }
    match reply {
        Ok(Some(sealed)) => {
            let answer = if framed {
                Frame::encode(FrameKind::Response, &sealed)
            } else {
                sealed
            };
            if let Err(e) = send.write_all(&answer).await {
                tracing::debug!("writing response: {e}");
                return;
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!("request handler panicked: {e}"),
    }
    let _ = send.finish();
    // Wait for the peer to receive the data before the stream is dropped.
    let _ = send.stopped().await;
}
