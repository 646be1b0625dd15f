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
//! With `--protocol` it is instead the ceiling for *any* server of ieum's citizen protocol:
//! it speaks the protocol and does no work. A connection gets a `welcome` frame the size of
//! ieum's; each `message` frame is parsed and answered with an `ack` and a canned `bot`
//! frame the size of ieum's mean bot frame (800 bytes over the load corpus), written
//! together in one flush as ieum writes them; `close` is answered with `closed`. There is no
//! triage, state, store or conversation: whatever ieum costs beyond this server is the
//! price of its work, and whatever this server costs beyond the bare echo is the price of
//! the protocol (two frames out per message, one of them large, and the client parsing
//! them).
//!
//! ```console
//! $ cargo run --release --bin echo -- --listen 127.0.0.1:9000 [--protocol]
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use futures::{SinkExt, StreamExt};
use ieum::http::ws::{
    MAX_FRAME_BYTES, MAX_WRITE_BUFFER_BYTES, READ_BUFFER_BYTES, WRITE_BUFFER_BYTES,
};
use tokio::net::TcpSocket;

/// The same allocator as `ieum serve`, so the baseline differs from it only in what it does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:9000".parse()?;
    let mut protocol = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--protocol" => protocol = true,
            "--listen" => {
                listen = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--listen needs an address"))?
                    .parse()?;
            }
            "-h" | "--help" => {
                println!(
                    "echo [--listen 127.0.0.1:9000] [--protocol]: websocket echo on /ws/chat \
                     (--protocol: answer like ieum, with canned frames and no work)"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    raise_open_files_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, protocol))
}

async fn serve(addr: SocketAddr, protocol: bool) -> anyhow::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    eprintln!("echo listening on {}", listener.local_addr()?);
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/ws/chat",
            get(move |upgrade: WebSocketUpgrade| ws(upgrade, protocol)),
        );
    axum::serve(
        listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        router,
    )
    .await?;
    Ok(())
}

async fn ws(ws: WebSocketUpgrade, protocol: bool) -> Response {
    let ws = ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES);
    if protocol {
        ws.on_upgrade(speak)
    } else {
        ws.on_upgrade(echo)
    }
}

/// What `--protocol` reads of a citizen frame.
#[derive(serde::Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
}

/// A `welcome` frame the size of ieum's (1,755 bytes; the id and token are fixed).
const WELCOME: &str = r#"{"type":"welcome","conversation_id":"01a2155820fdf29aa5a632e760d56a4a","token":"dPJ4GXfdv3nJLd1_vpzSTjxzh9_N0S0J_MP5hh52hBs","seq":0,"resumed":false,"lang":"ko","greeting":{"text":"안녕하세요, 이음이에요. 외롭거나 마음이 힘들 때 언제든 이야기 나눌 수 있는 곳이에요. 저는 챗봇이고, 원하시면 언제든 상담사 선생님과 연결해 드려요. 오늘은 어떤 마음으로 오셨어요?","resources":[{"id":"suicide_prevention_109","name_ko":"자살예방상담전화 109","name_en":"Suicide prevention line 109","phone":"109","hours":"24h","languages":["ko"],"purpose_ko":"죽고 싶은 마음이 들 때 24시간 전화로 이야기를 들어 주는 자살예방 상담전화예요. 2024년 1월부터 하나로 통합된 번호예요.","purpose_en":"The national suicide-prevention line: someone listens, by phone, 24 hours a day. The single number since January 2024.","source":"shared/DOMAIN.md: Crisis and help lines","verified":true,"emergency":true},{"id":"emergency_119","name_ko":"119 (화재·구급)","name_en":"119 (fire and ambulance)","phone":"119","hours":"24h","languages":["ko"],"purpose_ko":"생명이 지금 위험할 때, 다치거나 몸이 위급할 때 전화해요.","purpose_en":"Call when a life is in danger right now, or for injuries and medical emergencies.","source":"shared/DOMAIN.md: Crisis and help lines","verified":true,"emergency":true}],"quick_replies":[{"label":"요즘 외로워요","text":"요즘 외로워요"},{"label":"상담사와 이야기하기","text":"상담사와 이야기하고 싶어요"},{"label":"마음약방","text":"마음약방 처방해 주세요"},{"label":"우리 구 지원 찾기","text":"우리 구 지원을 알고 싶어요"}]},"state":"bot"}"#;

/// A `bot` frame after its `seq`: a real reply of ieum's, 871 bytes in all with the head
/// (ieum's mean over the load corpus is 800, its median 478).
const BOT_REST: &str = r#""text":"잠들지 못하는 밤은 정말 길죠. 말해 주셔서 고마워요. 요즘 잠을 방해하는 생각이나 걱정이 있으세요? 화면 불빛을 줄이고 천천히 숨을 내쉬어 보는 것도 작은 도움이 돼요.","resources":[{"id":"crisis_1577_0199","name_ko":"정신건강위기상담전화","name_en":"Mental-health crisis line","phone":"1577-0199","hours":"24h","languages":["ko"],"purpose_ko":"정신건강 위기 상담을 24시간 받아요. 사는 지역의 정신건강복지센터로도 이어 줘요.","purpose_en":"Mental-health crisis counselling, 24 hours. Also routes you to your local mental-health welfare center.","source":"shared/DOMAIN.md: Crisis and help lines","verified":true,"emergency":true}],"quick_replies":[{"label":"잠 못 드는 밤 처방","text":"마음약방 불면 처방해 주세요"}]}"#;

/// What a socket answers to one text frame: up to two frames, written in one flush.
type Answer = [Option<Message>; 2];

/// The bare echo: every text frame goes back as it came (no copy).
async fn echo(socket: WebSocket) {
    serve_socket(socket, None, |t| [Some(Message::Text(t)), None]).await;
}

/// `--protocol`: ieum's citizen protocol with canned answers and no work.
async fn speak(socket: WebSocket) {
    let mut seq = 0u64;
    let welcome = Message::Text(WELCOME.into());
    serve_socket(socket, Some(welcome), move |t| answer(t.as_str(), &mut seq)).await;
}

/// The protocol echo's answer: `ack` and a canned `bot` frame to a `message`, `closed` to
/// a `close`, nothing to anything else (or to a frame that is not JSON).
fn answer(text: &str, seq: &mut u64) -> Answer {
    let Ok(frame) = serde_json::from_str::<Incoming>(text) else {
        return [None, None];
    };
    match frame.ty.as_ref() {
        "message" => {
            let id = serde_json::to_string(frame.id.as_deref().unwrap_or("")).unwrap_or_default();
            let ack = format!(r#"{{"type":"ack","id":{id},"seq":{}}}"#, *seq + 1);
            let bot = format!(r#"{{"type":"bot","seq":{},{BOT_REST}"#, *seq + 2);
            *seq += 2;
            [
                Some(Message::Text(ack.into())),
                Some(Message::Text(bot.into())),
            ]
        }
        "close" => {
            *seq += 1;
            let closed = format!(r#"{{"type":"closed","seq":{seq}}}"#);
            [Some(Message::Text(closed.into())), None]
        }
        _ => [None, None],
    }
}

/// One connection: `first` (if any), then each text frame's answer in one flush, and a
/// ping every 20 s, until the client closes or the socket fails.
async fn serve_socket(
    socket: WebSocket,
    first: Option<Message>,
    mut answer: impl FnMut(Utf8Bytes) -> Answer,
) {
    let (mut sink, mut stream) = socket.split();
    if let Some(m) = first {
        if sink.send(m).await.is_err() {
            return;
        }
    }
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    ping.tick().await;
    loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let mut wrote = false;
                    for m in answer(t).into_iter().flatten() {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                        wrote = true;
                    }
                    if wrote && sink.flush().await.is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(a: Answer) -> Vec<serde_json::Value> {
        a.into_iter()
            .flatten()
            .map(|m| match m {
                Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON frame"),
                other => panic!("not text: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_protocol_echo_answers_like_ieum_with_growing_seqs() {
        let mut seq = 0;
        let frames = texts(answer(
            r#"{"type":"message","id":"c1-\"1\"","text":"안녕"}"#,
            &mut seq,
        ));
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0]["type"], "ack");
        assert_eq!(frames[0]["id"], "c1-\"1\"");
        assert_eq!(frames[0]["seq"], 1);
        assert_eq!(frames[1]["type"], "bot");
        assert_eq!(frames[1]["seq"], 2);
        assert!(
            frames[1]["resources"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        );

        let closed = texts(answer(r#"{"type":"close"}"#, &mut seq));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0]["type"], "closed");
        assert_eq!(closed[0]["seq"], 3);

        assert!(texts(answer("not json", &mut seq)).is_empty());
        assert!(texts(answer(r#"{"type":"rating","value":5}"#, &mut seq)).is_empty());
        assert_eq!(seq, 3);
    }

    #[test]
    fn the_canned_frames_are_valid_json_of_ieums_sizes() {
        let welcome: serde_json::Value = serde_json::from_str(WELCOME).expect("welcome");
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(WELCOME.len(), 1755);
        let bot = format!(r#"{{"type":"bot","seq":2,{BOT_REST}"#);
        serde_json::from_str::<serde_json::Value>(&bot).expect("bot frame");
        assert_eq!(bot.len(), 871, "the size the docs and BENCHMARKS.md give");
    }
}
