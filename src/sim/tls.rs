//! The simulator's TLS listener: the KLAP server of a plug whose discovery template says
//! `is_support_https: true`, served over TLS with the test-only certificate in `assets/tls/`
//! (a self-signed RSA-2048 pair made once with openssl, like the devices' own self-signed
//! certificates; its key is public, it secures nothing).
//!
//! TLS 1.3 and 1.2 (rustls, `ring`); each connection's handshake is bounded by
//! [`HANDSHAKE_TIMEOUT`], then HTTP/1.1 (hyper) serves the same axum router as plain HTTP.
//! [`Mode::Hang`] is the `tls-hang` fault: TCP is accepted and the TLS handshake is never
//! answered (the client's hello is read and dropped) until the fleet stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ServerConfig, version};
use tokio_util::sync::CancellationToken;

use super::error::SimError;

/// The test-only certificate (PEM), also what a test client may pin.
pub const CERT_PEM: &str = include_str!("../../assets/tls/sim-cert.pem");
const KEY_PEM: &str = include_str!("../../assets/tls/sim-key.pem");

/// Bound on one connection's TLS handshake (a client that stalls is dropped).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections a `tls-hang` device holds open at once (more are closed at once).
const MAX_HELD: usize = 64;
/// Time a response in flight gets to end when the fleet stops.
const DRAIN: Duration = Duration::from_secs(1);

/// How a listener answers.
#[derive(Clone)]
pub enum Mode {
    Tls(TlsAcceptor),
    /// Accepts TCP and never completes the TLS handshake.
    Hang,
}

/// The acceptor for the test-only certificate.
pub fn acceptor() -> Result<TlsAcceptor, SimError> {
    let bad = |what: &str, e: String| SimError::Invalid(format!("simulator TLS {what}: {e}"));
    let cert = CertificateDer::from_pem_slice(CERT_PEM.as_bytes())
        .map_err(|e| bad("certificate", e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).map_err(|e| bad("key", e.to_string()))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .map_err(|e| bad("configuration", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| bad("configuration", e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts on `listener` until `stop`; every connection on its own task. `handshakes` counts
/// the TLS handshakes completed (one per connection a client keeps).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    mode: Mode,
    handshakes: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let held = Arc::new(tokio::sync::Semaphore::new(MAX_HELD));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        let Ok((tcp, _peer)) = accepted else {
            // Out of descriptors or similar: do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let stop = stop.clone();
        match &mode {
            Mode::Hang => {
                let Ok(slot) = held.clone().try_acquire_owned() else {
                    continue;
                };
                tokio::spawn(async move {
                    let _slot = slot;
                    let mut tcp = tcp;
                    let mut sink = [0u8; 4096];
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            r = tcp.read(&mut sink) => match r {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            },
                        }
                    }
                });
            }
            Mode::Tls(acceptor) => {
                let acceptor = acceptor.clone();
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let handshakes = handshakes.clone();
                tokio::spawn(async move {
                    let tls = tokio::select! {
                        () = stop.cancelled() => return,
                        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => r,
                    };
                    let Ok(Ok(tls)) = tls else {
                        return;
                    };
                    handshakes.fetch_add(1, Ordering::Relaxed);
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        () = stop.cancelled() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(DRAIN, conn.as_mut()).await;
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_pair_loads() {
        assert!(acceptor().is_ok());
        assert!(CERT_PEM.contains("BEGIN CERTIFICATE"));
    }
}
