//! The bridge server: OpenAI's image API in front of ComfyUI, and the web app, on one host.
// The web app's views are deeply nested types; the default limit is too low for them.
#![recursion_limit = "256"]

mod adopt;
mod auth;
pub mod comfy;
pub mod config;
pub mod db;
mod deliver;
pub mod error;
mod extract;
pub mod gallery;
mod health;
mod hosts;
pub mod jobs;
mod ledger;
mod metadata;
mod metrics;
mod models;
pub mod objects;
mod overview;
mod routes;
mod routing;
mod serve;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod templates;
mod tokens;
mod validate;

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::{
    auth::Auth,
    comfy::ComfyPool,
    config::Config,
    db::Db,
    deliver::Delivery,
    gallery::{Gallery, GalleryState},
    jobs::Jobs,
    ledger::{Ledger, Webhooks},
    models::Models,
    objects::Objects,
    state::AppState,
    storage::ImageStore,
    validate::Checks,
};

/// A running bridge (and, in demo mode, the simulator behind it).
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    pub shutdown: CancellationToken,
    pub sim: Option<sim::RunningSim>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for open requests to finish.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        self.server.await.unwrap_or(Ok(()))
    }
}

/// Starts the bridge on `config.listen` (port 0 picks a free port) and returns once it accepts
/// connections. With no ComfyUI configured, the built-in simulator is started as the backend.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let shutdown = CancellationToken::new();
    let mut urls = config.comfyui_urls();
    let mut sim = None;
    let demo = urls.is_empty();
    if demo {
        let simulator = sim::Simulator::new(sim::SimConfig {
            step_delay: Duration::from_millis(config.demo_step_delay_ms),
            ..sim::SimConfig::default()
        });
        let running = simulator
            .serve(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("starting the built-in ComfyUI simulator")?;
        tracing::warn!(
            url = %running.url,
            "no ComfyUI configured (COMFYUI_URL): using the built-in simulator as a demo backend"
        );
        urls.push(running.url.clone());
        sim = Some(running);
    }
    if config.api_key.iter().all(|k| k.trim().is_empty()) {
        tracing::warn!("API_KEY is not set: the API is open to anyone who can reach this address");
    }

    let models = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Models::load(&config))
            .await
            .context("loading the workflows")?
    };
    models.watch(shutdown.clone());
    let objects = Objects::open(config.storage_url.as_deref(), &config.data_dir)
        .await
        .context("opening the image storage")?;
    let images = ImageStore::new(
        objects.clone(),
        config.image_retention(),
        config.public_url.as_deref(),
    );
    images.spawn_sweeper(shutdown.clone());
    let db = Db::open(config.database_url.as_deref(), &config.data_dir).await?;
    let webhooks = Webhooks::new(&config.webhook_hosts, config.webhook_secret.as_deref());
    let ledger = Ledger::new(db.clone(), objects.clone(), webhooks, config.job_lease());
    ledger.spawn_sweeper(shutdown.clone());
    ledger.spawn_deliveries(shutdown.clone());
    let gallery = if config.gallery != config::GalleryMode::Off {
        let gallery = Gallery::open(db, objects, config.gallery_retention())
            .await
            .context("opening the gallery")?;
        gallery.sweep_by_age(shutdown.clone());
        Some(gallery)
    } else {
        None
    };
    // The gallery hears of finished images; jobs know nothing of it.
    let finished = gallery.as_ref().map(|gallery| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        gallery.listen(rx);
        tx
    });
    let pool =
        ComfyPool::connect(&urls, &shutdown).map_err(|e| anyhow::anyhow!("COMFYUI_URL: {e}"))?;
    models.follow_schemas(&pool, shutdown.clone());
    let listen = config.listen;
    let state = AppState {
        leptos: leptos_options(&config),
        models,
        metrics: metrics::Metrics::new(pool.clone()),
        jobs: Jobs::new(&config, pool, demo, finished),
        checks: Checks::new(&config),
        delivery: Delivery::new(&config, images.clone(), ledger),
        images,
        gallery: GalleryState::new(gallery),
        auth: Auth::new(&config.api_key),
    };

    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    adopt::spawn(state.clone(), config.job_lease(), shutdown.clone());
    let app = router(state.clone());
    let limits = serve::limits(&config);
    let server = tokio::spawn(serve::serve(listener, app, limits, shutdown.clone()));
    tracing::info!("ComfyUI API Bridge listening on http://{addr}");
    Ok(Running {
        addr,
        state,
        shutdown,
        sim,
        server,
    })
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await?;
    Ok(())
}

/// Runs only the simulator, for trying a client against a stand-in ComfyUI.
pub async fn run_simulator(args: config::SimulatorArgs) -> anyhow::Result<()> {
    let simulator = sim::Simulator::new(args.sim_config());
    let running = simulator.serve(args.listen).await?;
    tracing::info!(url = %running.url, "ComfyUI simulator listening");
    shutdown_signal().await;
    Ok(())
}

pub fn router(state: AppState) -> Router {
    let pages = generate_route_list(app::App);
    let overview = overview::port(state.clone());
    Router::new()
        .nest("/v1", routes::v1(&state))
        .merge(routes::ops(&state))
        .nest("/pkg", static_files(&state))
        .leptos_routes_with_context(
            &state,
            pages,
            move || leptos::context::provide_context(overview.clone()),
            {
                let options = state.leptos.clone();
                move || app::shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The web app's script, wasm and style (`/pkg`): compressed for clients that take brotli or
/// gzip. Files whose names carry their content's hash (cargo-leptos's `hash-files`) never
/// change, so browsers keep them for a year without asking; anything else is revalidated with
/// `Last-Modified`, so a reload costs a 304 rather than the megabyte of wasm.
fn static_files(state: &AppState) -> Router<AppState> {
    let dir = std::path::Path::new(state.leptos.site_root.as_ref())
        .join(state.leptos.site_pkg_dir.as_ref());
    // A release build writes each file's `.br` and `.gz` beside it (`cargo leptos build
    // --precompress`), at brotli's best level, which would take seconds per request: the
    // wasm moves about 12% smaller than compressed as it is sent.
    let files = tower_http::services::ServeDir::new(dir)
        .precompressed_br()
        .precompressed_gzip();
    Router::new()
        .fallback_service(files)
        .layer(axum::middleware::from_fn(cache_control))
        // Without files compressed ahead (development builds), as they are sent: brotli's
        // default level takes seconds on a megabyte of wasm; level 5 keeps most of the gain at
        // a few milliseconds. A response that is already compressed passes through.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Precise(5)),
        )
}

async fn cache_control(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let hashed = is_hashed(req.uri().path());
    let mut res = next.run(req).await;
    let value = if hashed && res.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let headers = res.headers_mut();
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static(value),
    );
    // Precompressed or not, the body depends on what the client accepts; a shared cache must
    // not hand brotli to a client that asked for gzip.
    headers.insert(
        axum::http::header::VARY,
        axum::http::HeaderValue::from_static("accept-encoding"),
    );
    res
}

/// `comfyui-bridge.<hash>.wasm`: cargo-leptos names a file by its MD5, 22 characters of
/// unpadded base64url, between the name and the extension.
fn is_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 3
        && parts[1..parts.len() - 1].iter().any(|p| {
            p.len() == 22
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether the build beside this binary hashed the web app's file names: cargo-leptos then
/// writes their hashes to `hash.txt` next to the server it built.
fn hashed_build() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("hash.txt")))
        .is_some_and(|p| p.exists())
}

/// The web app's settings, from the bridge's own configuration, so the binary runs the same
/// with or without cargo-leptos around it.
fn leptos_options(config: &Config) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("comfyui-bridge")
        .site_root(config.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .hash_files(hashed_build())
        .site_addr(config.listen)
        .build()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
