//! WebSocket (RFC 6455) on the server's upgraded connections.
//!
//! [`accept`] checks a request's opening handshake and answers it: `101`
//! with `Sec-WebSocket-Accept`, then the handler gets a [`WebSocket`]; a
//! bad handshake gets 400, a version other than 13 gets 426 naming 13.
//! The protocol itself (framing, masking, fragmented messages, UTF-8 of
//! text, ping answers, the close handshake, `--ws-max-size` as 1009) is
//! tungstenite's, through `async-tungstenite`: its runtime-agnostic
//! futures-io binding runs on `Upgraded` as it is, so the ring carries the
//! bytes and no other runtime is involved. What this module adds is what a
//! server owes: pings to an idle peer every `--ws-ping-interval`, a close
//! (1011) when one goes unanswered for `--ws-ping-timeout`, and a Close
//! 1001 at a graceful shutdown. tungstenite has no permessage-deflate, so
//! none is offered (a client asking for it gets the plain protocol, as
//! RFC 6455 §9.1 allows).

use std::future::Future;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::WebSocketStream;
use futures_lite::StreamExt;

use crate::app::{Context, Request, Response, Upgraded};
use crate::config::WsSettings;
use crate::http::{self, Method, Version};

pub use async_tungstenite::tungstenite::{Error, Message};

/// Answers a WebSocket opening handshake (RFC 6455 §4.2): when `req` is
/// one, `handler` gets the connection once the `101` is written; when it
/// is not, the answer says why (400, or 426 for another version).
pub fn accept<F, Fut>(req: &Request, cx: &Context, handler: F) -> Response
where
    F: FnOnce(WebSocket) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let key = match handshake_key(req) {
        Ok(key) => key,
        Err(refusal) => return refusal,
    };
    let settings = cx.ws_settings();
    Response::upgrade("websocket", move |io| async move {
        handler(WebSocket::new(io, settings).await).await;
    })
    .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
}

/// The `Sec-WebSocket-Key` of a valid opening handshake, else the answer.
fn handshake_key(req: &Request) -> Result<String, Response> {
    let bad = |why: &str| Response::plain(400, format!("WebSocket handshake: {why}\n"));
    if req.method() != Method::Get || req.version() != Version::Http11 {
        return Err(bad("the request must be GET over HTTP/1.1"));
    }
    let has_token = |name: &str, token: &str| {
        req.headers().any(|(n, v)| n.eq_ignore_ascii_case(name) && http::has_token(v, token))
    };
    if !has_token("upgrade", "websocket") {
        return Err(bad("Upgrade: websocket is missing").header("upgrade", "websocket"));
    }
    if !has_token("connection", "upgrade") {
        return Err(bad("Connection: upgrade is missing"));
    }
    if req.header("sec-websocket-version") != Some(b"13") {
        return Err(Response::plain(426, "WebSocket version 13 only\n")
            .header("sec-websocket-version", "13")
            .header("upgrade", "websocket"));
    }
    let key = req.header("sec-websocket-key").unwrap_or_default().trim_ascii();
    // 16 random bytes, base64: 24 characters ending in "==".
    let is_key = key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
    if !is_key {
        return Err(bad("Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    Ok(String::from_utf8_lossy(key).into_owned())
}

/// An open WebSocket, server side. Receive with [`WebSocket::recv`] (pings
/// are answered, and the server's own pings sent, while it waits), send
/// with [`WebSocket::send`], end with [`WebSocket::close`].
pub struct WebSocket {
    stream: WebSocketStream<Upgraded>,
    /// Completes when the server begins a graceful shutdown.
    stopping: std::pin::Pin<Box<dyn Future<Output = ()>>>,
    settings: WsSettings,
    /// When the server last heard from the peer.
    heard: Instant,
    /// When the unanswered ping was sent.
    pinged: Option<Instant>,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket").field("settings", &self.settings).finish()
    }
}

/// What woke [`WebSocket::recv`].
enum Woken {
    Message(Option<Result<Message, Error>>),
    Timer,
    Stopping,
}

impl WebSocket {
    async fn new(io: Upgraded, settings: WsSettings) -> WebSocket {
        // tungstenite's own read buffer would be 128 KiB per connection, held
        // for its life; the upgraded socket buffers what arrives, so a small
        // one costs a copy per 4 KiB, not a read.
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_CHUNK)
            .write_buffer_size(0)
            .max_message_size(Some(settings.max_size))
            .max_frame_size(Some(settings.max_size));
        let stopping = Box::pin(io.stopping());
        let stream = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        WebSocket { stream, stopping, settings, heard: Instant::now(), pinged: None }
    }

    /// The next data message (text or binary; pings, pongs and the close
    /// handshake are handled here): `None` once the connection closed. A
    /// message that breaks the protocol closes the connection with its
    /// code (1002, 1007 for invalid UTF-8, 1009 past `--ws-max-size`) and
    /// comes back as the error. While it waits,
    /// the peer is pinged every `--ws-ping-interval` of silence, and closed
    /// with 1011 if a ping goes unanswered for `--ws-ping-timeout`; at a
    /// graceful shutdown the server sends Close 1001 and this returns
    /// `None`. A message larger than `--ws-max-size` closes with 1009.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        loop {
            let woken = {
                let deadline = self.deadline();
                let stopping = &mut self.stopping;
                let next = async { Woken::Message(self.stream.next().await) };
                let timer = async {
                    match deadline {
                        Some(at) => {
                            glommio::timer::sleep(at.saturating_duration_since(Instant::now()))
                                .await
                        }
                        None => std::future::pending::<()>().await,
                    }
                    Woken::Timer
                };
                let stop = async {
                    stopping.await;
                    Woken::Stopping
                };
                futures_lite::future::or(next, futures_lite::future::or(timer, stop)).await
            };
            match woken {
                Woken::Message(Some(Ok(message))) => {
                    self.heard = Instant::now();
                    self.pinged = None;
                    match message {
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                        Message::Close(_) => {
                            // The peer's Close is answered: tungstenite
                            // queued the reply, a flush sends it.
                            let _ = futures_util::SinkExt::flush(&mut self.stream).await;
                            return None;
                        }
                        message => return Some(Ok(message)),
                    }
                }
                Woken::Message(Some(Err(error))) => {
                    // RFC 6455 §7.4.1: say why before closing.
                    if let Some((code, reason)) = close_code_for(&error) {
                        self.close(code, reason).await;
                    }
                    return Some(Err(error));
                }
                Woken::Message(None) => return None,
                Woken::Stopping => {
                    self.close(CloseCode::Away, "server shutting down").await;
                    return None;
                }
                Woken::Timer => {
                    if let Some(pinged) = self.pinged {
                        if !self.settings.ping_timeout.is_zero()
                            && pinged.elapsed() >= self.settings.ping_timeout
                        {
                            self.close(CloseCode::Error, "keepalive ping timeout").await;
                            return None;
                        }
                    } else if self.stream.send(Message::Ping(Default::default())).await.is_err() {
                        return None;
                    } else {
                        self.pinged = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// When the liveness timer next fires: the ping timeout of the ping in
    /// flight, or the next ping after a silence.
    fn deadline(&self) -> Option<Instant> {
        let settings = &self.settings;
        match self.pinged {
            Some(_) if settings.ping_timeout.is_zero() => None,
            Some(pinged) => Some(pinged + settings.ping_timeout),
            None if settings.ping_interval.is_zero() => None,
            None => Some(self.heard + settings.ping_interval),
        }
    }

    /// Sends a message.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.stream.send(message).await
    }

    /// Starts the close handshake with `code` and `reason`, and waits (a
    /// short while) for the peer's Close.
    pub async fn close(&mut self, code: CloseCode, reason: &str) {
        let frame = CloseFrame { code, reason: reason.to_owned().into() };
        if self.stream.close(Some(frame)).await.is_err() {
            return;
        }
        let answered = async { while let Some(Ok(_)) = self.stream.next().await {} };
        let give_up = glommio::timer::sleep(CLOSE_WAIT);
        futures_lite::future::or(answered, give_up).await;
    }
}

/// The Close code that tells the peer why its message ended the
/// connection; `None` when the connection itself failed.
fn close_code_for(error: &Error) -> Option<(CloseCode, &'static str)> {
    match error {
        Error::Capacity(_) => Some((CloseCode::Size, "message too big")),
        Error::Utf8(_) => Some((CloseCode::Invalid, "invalid UTF-8 in a text message")),
        Error::Protocol(_) | Error::AttackAttempt => Some((CloseCode::Protocol, "protocol error")),
        _ => None,
    }
}

/// The chunk tungstenite reads from the upgraded socket at a time.
const READ_CHUNK: usize = 4 << 10;

/// How long a closing server waits for the peer's Close.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

pub use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode as Code;
