//! The broker's HTTP listener (`http.listeners`): `/metrics` for Prometheus,
//! `/healthz` and `/readyz` for probes, `/api/v1` and the console at `/`. It runs on its own tasks and reads
//! the broker's atomics, never a lock the produce and fetch paths wait on
//! for long; it is bound before the logs are recovered, so that `/readyz`
//! can say the broker is still starting.

use crate::scrubber::ScrubProbe;
use crate::state::BrokerState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;
use tokio::sync::watch;

mod actions;
mod api;
mod console;
mod limits;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoints serve once the broker has started.
#[derive(Default)]
pub(crate) struct Started {
    serving: OnceLock<(Arc<BrokerState>, Arc<ScrubProbe>)>,
}

impl Started {
    /// The logs are recovered and the broker serves Kafka clients.
    pub(crate) fn set(&self, state: Arc<BrokerState>, scrub: Arc<ScrubProbe>) {
        let _ = self.serving.set((state, scrub));
    }
}

fn router(started: Arc<Started>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api::routes())
        .merge(actions::routes())
        .merge(console::routes())
        .with_state(started)
}

async fn metrics(State(started): State<Arc<Started>>) -> Response {
    let Some((state, scrub)) = started.serving.get().cloned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: logs are being recovered\n",
        )
            .into_response();
    };
    match tokio::task::spawn_blocking(move || crate::metrics::render(state, scrub)).await {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering the metrics failed\n",
        )
            .into_response(),
    }
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: logs recovered and serving. On a single node this node is its
/// own quorum and never fenced; the cluster adds those checks.
async fn readyz(State(started): State<Arc<Started>>) -> Response {
    let json = [(header::CONTENT_TYPE, "application/json")];
    if started.serving.get().is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json,
            "{\"ready\":false,\"reason\":\"recovering logs\"}\n",
        )
            .into_response();
    }
    (
        StatusCode::OK,
        json,
        "{\"ready\":true,\"logs_recovered\":true,\"quorum_reachable\":true,\"fenced\":false}\n",
    )
        .into_response()
}

/// What one HTTP listener allows (`http.max.connections`,
/// `http.max.requests.per.second`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    pub(crate) max_connections: usize,
    pub(crate) requests_per_second: u32,
}

/// Serves on every bound listener until `stopped` turns true.
pub(crate) async fn serve(
    listeners: Vec<TcpListener>,
    limits: HttpLimits,
    started: Arc<Started>,
    stopped: watch::Receiver<bool>,
) {
    let servers = listeners.into_iter().map(|listener| {
        let mut stopped = stopped.clone();
        let rate = limits::RateLimit::new(limits.requests_per_second);
        let app = router(Arc::clone(&started))
            .layer(axum::middleware::from_fn_with_state(
                rate,
                limits::rate_limited,
            ))
            .into_make_service_with_connect_info::<limits::Peer>();
        let listener = limits::LimitedListener::new(listener, limits.max_connections);
        async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "the HTTP listener failed");
            }
        }
    });
    let tasks: Vec<_> = servers.map(tokio::spawn).collect();
    for task in tasks {
        let _ = task.await;
    }
}
