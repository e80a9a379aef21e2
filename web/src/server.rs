//! The accept loop: hyper's connection builder with the limits `axum::serve`
//! does not set.
//!
//! - A client has `--header-timeout-secs` to send a request's headers; a
//!   connection that trickles them is closed (hyper needs a timer for that).
//! - At most `--max-connections` connections are open: beyond them, new ones
//!   wait in the listen backlog until one closes, and the server never runs
//!   out of file descriptors.
//! - On shutdown the listener closes, connections finish their requests in
//!   flight, and those still open after `--shutdown-timeout-secs` are closed.
//!   A request cut then never heard "accepted", and leaves nothing behind.
//! - One address may hold at most `--max-connections-per-client` of them (a
//!   trusted proxy, which speaks for many, is exempt): one more is answered
//!   503 with `Retry-After` and closed, so a few clients cannot take every slot.
//! - Every request knows its peer's address (`ConnectInfo`), for the rate limit.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How the accept loop treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub shutdown_timeout: Duration,
}

/// What a client over its connection cap hears before the connection closes.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 62\r\nConnection: close\r\n\r\nToo many connections from your address; try again in a moment.";

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    trusted_proxies: Vec<std::net::IpAddr>,
    shutdown: impl Future<Output = ()>,
) {
    // The semaphore below bounds them all, and waits; this refuses one address's one too many.
    let per_client = crate::slots::Slots::new(usize::MAX, limits.max_connections_per_client);
    // HTTP/1 only: browsers speak HTTP/2 to a TLS proxy in front, never in
    // clear text; and guessing the version first reads bytes with no timer,
    // so a connection that sends nothing would hold its slot for ever.
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(%error, "Could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let client = crate::client::client_key(peer.ip().to_canonical());
        let counted_as = (!trusted_proxies.contains(&peer.ip().to_canonical())).then_some(client);
        let client_slot = match per_client.take(counted_as) {
            Ok(slot) => slot,
            Err(_) => {
                tracing::info!(client.address = %client, "Refused a connection over the client's cap.");
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut stream = stream;
                    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(TOO_MANY_CONNECTIONS)).await;
                });
                continue;
            }
        };
        let service = router.clone().map_request(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, client.address = %peer, "A connection ended with an error.");
            }
            drop((slot, client_slot));
        });
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            tracing::warn!(connections = open, "Closing the connections still open after the shutdown timeout.");
        }
    }
}
