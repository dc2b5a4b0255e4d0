//! The reference for uring-serve's axum measurement: the same /plaintext
//! and /json routes under axum::serve on tokio's multi-thread runtime.
//! usage: axum-ref PORT WORKERS
use axum::{routing::get, Json, Router};

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8000);
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
    runtime.block_on(async move {
        let app = Router::new()
            .route("/plaintext", get(|| async { "Hello, World!" }))
            .route("/json", get(|| async { Json(serde_json::json!({ "message": "Hello, World!" })) }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}
