//! The axum router of the `axum` example (also driven by `tests/axum.rs`):
//! per-core state, JSON in and out, a path parameter, a streaming upload
//! and a tower-http middleware. The peer's address is the request's
//! `SocketAddr` extension (`TowerApp::with_peer_addr`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;
use uring_serve::CoreId;

/// What one core's router keeps: no lock is shared between cores (the
/// `Arc` and the atomic are axum's `Send` requirement, not contention).
#[derive(Clone)]
pub struct CoreState {
    core: CoreId,
    hits: Arc<AtomicU64>,
}

#[derive(Deserialize)]
pub struct Greeting {
    name: String,
}

#[derive(Serialize)]
pub struct Reply {
    message: String,
    core: usize,
}

/// The router for `core`.
pub fn router(core: CoreId) -> Router {
    let state = CoreState { core, hits: Arc::default() };
    Router::new()
        .route("/plaintext", get(|| async { "Hello, World!" }))
        .route("/json", get(|| async { Json(serde_json::json!({ "message": "Hello, World!" })) }))
        .route("/users/{id}", get(user))
        .route("/greet", post(greet))
        .route("/upload", post(upload))
        .route("/hits", get(hits))
        .route(
            "/peer",
            get(|Extension(peer): Extension<SocketAddr>| async move { format!("{}\n", peer.ip()) }),
        )
        .route("/lorem", get(|| async { "lorem ipsum dolor sit amet ".repeat(200) }))
        .with_state(state)
        .layer(CompressionLayer::new())
}

/// Only `/plaintext` and `/json`, no state, no middleware.
pub fn bare() -> Router {
    Router::new()
        .route("/plaintext", get(|| async { "Hello, World!" }))
        .route("/json", get(|| async { Json(serde_json::json!({ "message": "Hello, World!" })) }))
}

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}\n")
}

async fn greet(State(state): State<CoreState>, Json(greeting): Json<Greeting>) -> Json<Reply> {
    Json(Reply { message: format!("hello, {}", greeting.name), core: state.core.get() })
}

/// Counts the body as it arrives, keeping none of it.
async fn upload(body: Body) -> String {
    use futures_lite::StreamExt;
    let mut stream = body.into_data_stream();
    let mut bytes = 0usize;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(piece) => bytes += piece.len(),
            Err(e) => return format!("failed: {e}\n"),
        }
    }
    format!("{bytes} bytes\n")
}

async fn hits(State(state): State<CoreState>) -> String {
    let hits = state.hits.fetch_add(1, Ordering::Relaxed) + 1;
    format!("core {}: {hits} hits\n", state.core)
}
