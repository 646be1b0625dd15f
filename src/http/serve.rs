//! The accept loop and the listening socket.
//!
//! Sockets: the listener is bound through `TcpSocket` with a backlog of 4096 (tokio's
//! default of 128 overflowed when 200 clients connected at once, and dropped SYNs are only
//! retried after a second — a reconnect storm after a restart needs the room), and every
//! accepted socket gets `TCP_NODELAY` (an `ack` followed by a `bot` frame otherwise waits
//! on Nagle plus delayed ACK for tens of milliseconds). See `shared/MEASURED.md`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;

/// TCP-level limits of the accept loop.
pub struct ConnLimits {
    /// Open connections at most (citizens, staff and slow clients together); past it new
    /// sockets are closed at once, so file descriptors never run out.
    pub max_connections: usize,
    /// A client must send its whole request head within this time (slowloris).
    pub header_timeout: std::time::Duration,
}

/// The accept loop: one task per connection, `TCP_NODELAY`, a header-read timeout, a cap on
/// open connections, and graceful shutdown (stop accepting, let requests in flight finish
/// for up to 10 s; websocket sessions close themselves with 1001 on the same signal).
///
/// Not `axum::serve`: it sets no timer, so hyper's header-read timeout never fires and a
/// slow or partial handshake would hold its socket forever.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    signal: impl std::future::Future<Output = ()>,
    limits: ConnLimits,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use tower::ServiceExt;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut signal = std::pin::pin!(signal);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; stopping anyway");
        }
    }
}

/// Binds the listener with a backlog of 4096.
///
/// # Errors
/// The address cannot be bound.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
