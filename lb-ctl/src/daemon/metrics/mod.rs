//! Prometheus metrics: `GET /metrics` on the configured address (HTTP/1.1
//! by axum), in OpenMetrics or the classic text format as the scraper asks.
//! Each scrape takes one snapshot from the controller and renders it off
//! the controller's loop.
pub mod dataplane;
pub mod exposition;
pub mod families;

use std::net::SocketAddr;

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
};

use super::Command;

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, commands: mpsc::Sender<Command>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only GET /metrics is served here\n") })
        .with_state(commands);
    axum::serve(listener, app).await
}

async fn metrics(State(commands): State<mpsc::Sender<Command>>, headers: HeaderMap) -> Response {
    let (tx, rx) = oneshot::channel();
    let snapshot = match commands.send(Command::Metrics(tx)).await {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    let Some(snapshot) = snapshot else {
        return (StatusCode::SERVICE_UNAVAILABLE, "lb-ctl is stopping\n").into_response();
    };
    let text = exposition::openmetrics(&families::registry(&snapshot));
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if exposition::wants_openmetrics(accept) {
        ([(header::CONTENT_TYPE, exposition::OPENMETRICS)], text).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, exposition::CLASSIC)],
            exposition::classic(&text),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests;
