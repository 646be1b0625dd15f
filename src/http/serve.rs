//! The accept loop and the listening socket.
//!
//! Sockets: the listener is bound through `TcpSocket` with a backlog of 4096 (tokio's
//! default of 128 overflowed when 200 clients connected at once, and dropped SYNs are only
//! retried after a second — a reconnect storm after a restart needs the room), and every
//! accepted socket gets `TCP_NODELAY` (an `ack` followed by a `bot` frame otherwise waits
//! on Nagle plus delayed ACK for tens of milliseconds). See `shared/MEASURED.md`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;

/// TCP-level limits of the accept loop.
#[derive(Clone)]
pub struct ConnLimits {
    /// Open connections at most (citizens, staff and slow clients together); past it new
    /// sockets are closed at once, so file descriptors never run out.
    pub max_connections: usize,
    /// Open connections from one address at most.
    pub per_address: usize,
    /// The last this many connections are kept for addresses with few connections open
    /// (new citizens, staff, `/healthz` probes): one address near its cap cannot take them.
    pub headroom: usize,
    /// A client must send its whole request head within this time (slowloris); one that
    /// sends nothing at all is dropped when it passes.
    pub header_timeout: std::time::Duration,
    /// Accept connections forwarded by a standby node (their preamble names the client's
    /// address, under this key: [`super::forward`]). `None`: a preamble closes the
    /// connection.
    pub forward: Option<super::forward::ForwardKey>,
}

/// An address with at most this many connections open may use the headroom.
const FEW: usize = 4;

/// Open connections per client address. Owned by the accept loop; a connection's
/// [`Slot`] gives its place back when the connection ends.
#[derive(Clone, Default)]
struct Tally(Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>);

/// One admitted connection's place in the [`Tally`].
struct Slot {
    tally: Tally,
    ip: IpAddr,
}

impl Tally {
    /// Admits a connection from `ip` when `open` connections are open in all, or says no.
    fn admit(&self, ip: IpAddr, open: usize, limits: &ConnLimits) -> Option<Slot> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mine = map.get(&ip).copied().unwrap_or(0);
        let in_headroom = open + limits.headroom >= limits.max_connections;
        if mine >= limits.per_address || (in_headroom && mine >= FEW) {
            return None;
        }
        *map.entry(ip).or_insert(0) += 1;
        Some(Slot {
            tally: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.tally.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// The accept loop: one task per connection, `TCP_NODELAY`, caps on open connections in
/// all and per client address (with headroom kept for addresses with few connections), a
/// first-byte and a header-read timeout, and graceful shutdown (stop accepting, let requests
/// in flight finish for up to 10 s; websocket sessions close themselves with 1001 on the
/// same signal).
///
/// Not `axum::serve`: it sets no timer, so hyper's header-read timeout never fires and a
/// slow or partial handshake would hold its socket forever. hyper's own timeout starts only
/// once the first bytes arrive (the auto builder first waits to see which HTTP version it
/// is), so a connection that sends nothing is timed here.
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
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tally = Tally::default();
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
        let open = limits.max_connections - permits.available_permits();
        let Some(slot) = tally.admit(remote.ip(), open, &limits) else {
            drop(tcp);
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let first_byte = limits.header_timeout;
        let forward = limits.forward.clone();
        let limits_now = limits.clone();
        let tally_now = tally.clone();
        let mut remote = remote;
        tokio::spawn(async move {
            let mut tcp = tcp;
            let mut slot = slot;
            // Nothing within the header timeout: drop it (it holds a descriptor and a slot).
            let mut probe = [0u8; 1];
            match tokio::time::timeout(first_byte, tcp.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => {
                    drop((slot, permit));
                    return;
                }
            }
            // Forwarded by a standby: count it under the client's own address.
            match tokio::time::timeout(
                first_byte,
                super::forward::take_preamble(&mut tcp, forward.as_ref()),
            )
            .await
            {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(ip))) => {
                    drop(slot);
                    let Some(s) = tally_now.admit(ip, open, &limits_now) else {
                        return;
                    };
                    slot = s;
                    remote = SocketAddr::new(ip, remote.port());
                }
                _ => return,
            }
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(remote));
                    router.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                .into_owned();
            let _ = watcher.watch(conn).await;
            drop((slot, permit));
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
