//! A standby forwards people to the primary (PostgreSQL, several nodes).
//!
//! A load balancer that checks `/healthz/primary` sends nobody to a standby. But a plain
//! TCP balancer with no health check, a round-robin DNS name, or a balancer whose check
//! has not run yet does: without forwarding, every other person (and every other staff
//! request) would get a 503. So a standby passes every connection but its own health
//! checks to the primary, byte for byte (websockets included), and people never notice
//! which node they reached.
//!
//! The primary counts connections and rates per client address. A forwarded connection
//! comes from the standby's address, so the standby first sends one line, the
//! **preamble**, naming the client's address, with a time and an HMAC under the master
//! key (which every node has and nobody else): `IEUM-FWD <ip> <unix ms> <hex mac>\r\n`.
//! The primary's accept loop ([`super::serve`]) reads it, checks the MAC and that the time
//! is within [`PREAMBLE_MAX_AGE`], and counts the connection under the client's address.
//! A preamble that does not verify closes the connection: a client cannot claim another
//! address.
//!
//! The standby answers `/healthz` and `/healthz/primary` itself (503, `standby`), so a
//! balancer that checks them still sees what each node is.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::crypto::Key;

/// How old a preamble may be (clock skew between nodes plus the connection's setup).
pub const PREAMBLE_MAX_AGE: Duration = Duration::from_secs(60);

/// The preamble's first bytes.
pub const PREAMBLE_TAG: &[u8] = b"IEUM-FWD ";

/// The longest preamble line.
const PREAMBLE_MAX: usize = 200;

/// How long a standby waits for a request line before it decides where to send it.
const HEAD_WAIT: Duration = Duration::from_secs(10);

const PURPOSE: &[u8] = b"ieum forwarded connection v1";

/// The key nodes use to vouch for a client's address to each other: derived from the
/// master key, never the master key itself.
#[derive(Clone)]
pub struct ForwardKey(Key);

impl std::fmt::Debug for ForwardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForwardKey(..)")
    }
}

impl ForwardKey {
    /// Derived from the master key.
    pub fn new(master: &Key) -> ForwardKey {
        ForwardKey(Key::from_bytes(master.mac(b"ieum forward key", b"")))
    }

    fn mac(&self, ip: IpAddr, at_ms: u64) -> String {
        crate::hex::encode(&self.0.mac(PURPOSE, format!("{ip} {at_ms}").as_bytes()))
    }

    /// The line a standby sends before the client's bytes.
    pub fn preamble(&self, client: IpAddr, now_ms: u64) -> String {
        format!(
            "IEUM-FWD {client} {now_ms} {}\r\n",
            self.mac(client, now_ms)
        )
    }

    /// The client's address from a preamble line (without its `\r\n`), if it verifies.
    pub fn verify(&self, line: &str, now_ms: u64) -> Option<IpAddr> {
        let mut parts = line.strip_prefix("IEUM-FWD ")?.split(' ');
        let ip: IpAddr = parts.next()?.parse().ok()?;
        let at: u64 = parts.next()?.parse().ok()?;
        let mac = parts.next()?;
        if parts.next().is_some() || now_ms.abs_diff(at) > PREAMBLE_MAX_AGE.as_millis() as u64 {
            return None;
        }
        crate::ids::hashes_equal(mac.as_bytes(), self.mac(ip, at).as_bytes()).then_some(ip)
    }
}

/// Reads a preamble off the start of `tcp` if one is there: `Ok(None)` when the
/// connection does not start with [`PREAMBLE_TAG`] (nothing is consumed), `Ok(Some(ip))`
/// for a verified one (the line is consumed), `Err(())` for a bad one (close it).
pub async fn take_preamble(
    tcp: &mut TcpStream,
    key: Option<&ForwardKey>,
) -> Result<Option<IpAddr>, ()> {
    let mut head = [0u8; 9];
    let n = tcp.peek(&mut head).await.map_err(|_| ())?;
    if n == 0 || !PREAMBLE_TAG.starts_with(&head[..n.min(PREAMBLE_TAG.len())]) {
        return Ok(None);
    }
    // It starts like a preamble (or is a prefix of one): read the line.
    let Some(key) = key else { return Err(()) };
    let mut line = Vec::with_capacity(PREAMBLE_MAX);
    let mut byte = [0u8; 1];
    loop {
        if tcp.read(&mut byte).await.map_err(|_| ())? == 0 || line.len() >= PREAMBLE_MAX {
            return Err(());
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    let line = std::str::from_utf8(&line)
        .map_err(|_| ())?
        .trim_end_matches('\r');
    key.verify(line, crate::ids::now_ms()).map(Some).ok_or(())
}

/// Where the primary is, as the standby last read it from the lease.
pub type PrimaryAddr = watch::Receiver<Option<SocketAddr>>;

/// The standby's accept loop: health checks answered here, everything else forwarded to
/// the primary (or 503 while no primary is known), until `stop` turns true.
pub async fn standby(
    listener: TcpListener,
    primary: PrimaryAddr,
    key: ForwardKey,
    holder: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
        };
        let _ = tcp.set_nodelay(true);
        let primary = *primary.borrow();
        let key = key.clone();
        let holder = holder.clone();
        tokio::spawn(async move {
            let _ = one(tcp, remote, primary, &key, &holder).await;
        });
    }
}

async fn one(
    mut tcp: TcpStream,
    remote: SocketAddr,
    primary: Option<SocketAddr>,
    key: &ForwardKey,
    holder: &str,
) -> std::io::Result<()> {
    // The request line, to tell health checks apart (peeked: nothing is consumed).
    let mut buf = [0u8; 64];
    let deadline = tokio::time::Instant::now() + HEAD_WAIT;
    let line = loop {
        let n = tokio::time::timeout_at(deadline, tcp.peek(&mut buf))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n == 0 {
            return Ok(());
        }
        if n == buf.len() || buf[..n].contains(&b'\n') {
            break String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let path = line.split(' ').nth(1).unwrap_or("");
    let health =
        path == "/healthz" || path.starts_with("/healthz/") || path.starts_with("/healthz?");
    match primary {
        Some(addr) if !health => {
            let mut upstream =
                tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
                    .await
                    .map_err(|_| std::io::ErrorKind::TimedOut)??;
            let _ = upstream.set_nodelay(true);
            upstream
                .write_all(key.preamble(remote.ip(), crate::ids::now_ms()).as_bytes())
                .await?;
            tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await?;
            Ok(())
        }
        _ => {
            // Read (and drop) what the client sent of its request, then answer.
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut sink)).await;
            let (status, body) = if health {
                (
                    "503 Service Unavailable",
                    serde_json::json!({
                        "status": "standby",
                        "role": "standby",
                        "node": holder,
                        "primary": primary.map(|a| a.to_string()),
                        "reason": "another node is the primary; this one forwards to it and takes over if it goes",
                    })
                    .to_string(),
                )
            } else {
                (
                    "503 Service Unavailable",
                    "this ieum node is on standby and no primary is known yet; try again in a \
                     moment. If you are in danger, call 109 or 119 now.\n"
                        .to_owned(),
                )
            };
            let kind = if health {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            tcp.write_all(response.as_bytes()).await?;
            tcp.shutdown().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preamble_verifies_only_with_the_same_key_and_in_time() {
        let key = ForwardKey::new(&Key::from_bytes([7; 32]));
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let line = key.preamble(ip, 1_000_000);
        let line = line.trim_end();
        assert_eq!(key.verify(line, 1_000_000), Some(ip));
        assert_eq!(key.verify(line, 1_000_000 + 59_000), Some(ip));
        assert_eq!(key.verify(line, 1_000_000 + 61_000), None, "too old");
        let other = ForwardKey::new(&Key::from_bytes([8; 32]));
        assert_eq!(other.verify(line, 1_000_000), None, "another key");
        let forged = line.replace("203.0.113.9", "203.0.113.8");
        assert_eq!(key.verify(&forged, 1_000_000), None, "another address");
        assert_eq!(key.verify("IEUM-FWD 1.2.3.4 1000000", 1_000_000), None);
        assert_eq!(key.verify("GET / HTTP/1.1", 1_000_000), None);
    }
}
