//! `echo`: the baseline for `loadgen` — a bare axum websocket echo server with ieum's
//! socket settings and nothing else (no triage, no state machine, no store).
//!
//! Same as `ieum serve` (see `src/app.rs` and `src/gateway/mod.rs`): a listener bound
//! through `TcpSocket` with a backlog of 4096, `TCP_NODELAY` on every accepted socket, a
//! 4 KiB read buffer, no write buffering, a 256 KiB cap on queued writes, 64 KiB caps on
//! frames and messages, a ping every 20 s, the soft open-files limit raised to the hard
//! one, and tokio's default multi-threaded runtime. Every text frame is sent back as it
//! came; `GET /healthz` answers 200.
//!
//! ```console
//! $ cargo run --release --bin echo -- --listen 127.0.0.1:9000
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use futures::{SinkExt, StreamExt};
use ieum::gateway::{
    MAX_FRAME_BYTES, MAX_WRITE_BUFFER_BYTES, READ_BUFFER_BYTES, WRITE_BUFFER_BYTES,
};
use tokio::net::TcpSocket;

/// The same allocator as `ieum serve`, so the baseline differs from it only in what it does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:9000".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--listen needs an address"))?
                    .parse()?;
            }
            "-h" | "--help" => {
                println!("echo [--listen 127.0.0.1:9000]: websocket echo on /ws/chat");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    raise_open_files_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    eprintln!("echo listening on {}", listener.local_addr()?);
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/ws/chat", get(ws));
    axum::serve(
        listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        router,
    )
    .await?;
    Ok(())
}

async fn ws(ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(echo)
}

async fn echo(socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    ping.tick().await;
    loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if sink.send(Message::Text(t)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
}

fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
