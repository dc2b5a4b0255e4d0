//! The example's front: `/ws` answered by uring-serve's WebSocket API,
//! every other request handed to the axum router. axum's own
//! `WebSocketUpgrade` cannot run here (it needs hyper's upgrade machinery
//! and tokio), so an application that wants both routes the WebSocket path
//! ahead of the router, like this.

use axum::Router;
use uring_serve::tower::TowerApp;
use uring_serve::{ws, App, Context, Request, Response};

/// The router, behind a native `/ws` echo.
pub struct Site {
    router: TowerApp<Router>,
}

impl Site {
    pub fn new(router: Router) -> Site {
        Site { router: TowerApp::new(router).with_peer_addr() }
    }
}

impl App for Site {
    async fn call(&self, req: Request, cx: &Context) -> Response {
        if req.path() != "/ws" {
            return self.router.call(req, cx).await;
        }
        ws::accept(&req, cx, |mut socket| async move {
            while let Some(Ok(message)) = socket.recv().await {
                if message.is_close() || socket.send(message).await.is_err() {
                    break;
                }
            }
        })
    }
}
