//! `opennvr-edge run`: serve the AI adapter and the NVR core, and run the
//! cameras, until signalled.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AiState};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::frame::FrameStore;
use crate::hw::Hardware;
use crate::ingest::{self, Supervisor};
use crate::metrics::Registry;
use crate::mqtt::{Mirror, StatsFn, Status};
use crate::nvr::auth::{JwtKeys, LoginLimiter, Tickets};
use crate::nvr::store::Store;
use crate::nvr::NvrState;
use crate::serve;

/// Options of `run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Add the demo camera `camera_0` (Debian's vtest.avi, looped) if it is missing.
    #[arg(long, env = "OPENNVR_DEMO")]
    pub demo: bool,
}

/// Binds both ports, prints one `listening ai=ADDR nvr=ADDR` line on stdout
/// (tests and scripts read the real ports from it when given port 0), starts
/// the cameras, and serves until SIGINT or SIGTERM; then stops the cameras so
/// each ffmpeg closes its last chunk.
pub async fn run(mut cfg: Config, args: RunArgs) -> anyhow::Result<()> {
    if args.demo {
        ingest::demo::adjust(&mut cfg);
    }
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.paths.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.paths.data_dir.display()))?;
    let frames_dir = cfg.paths.frames_dir();
    let frames = FrameStore::new(&frames_dir, cfg.ai.max_body_bytes as u64)
        .with_context(|| format!("opening frames dir {}", frames_dir.display()))?;
    let engine = super::build_engine(&cfg)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let hw = Arc::new(Hardware::probe());
    if hw.has_gpu() {
        tracing::info!(
            "NVIDIA GPU found; inference stays on tract-cpu until a GPU backend is configured"
        );
    }
    let metrics = Arc::new(Registry::new());
    let v1 = Arc::new(api::v1::V1::new(&cfg));
    metrics.register(engine.clone());
    metrics.register(v1.clone());
    let state = Arc::new(AiState {
        engine: engine.clone(),
        frames,
        hw,
        started,
        max_body: cfg.ai.max_body_bytes,
        max_pixels: cfg.ai.max_image_pixels,
        mqtt: cfg.mqtt.enabled().then(Status::new),
        auth: api::auth::AdapterAuth::new(cfg.ai.token.as_deref(), cfg.ai.listen),
        metrics: metrics.clone(),
        v1: v1.clone(),
    });
    if let Some(status) = &state.mqtt {
        metrics.register(Arc::new(status.clone()));
    }
    if let Some(w) = state.auth.warning() {
        tracing::warn!("{w}");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut nvr_state = open_nvr(&cfg, started, clock.clone(), stop_rx.clone()).await?;
    let mirror = match &state.mqtt {
        Some(status) => {
            let ai = state.clone();
            let stats: StatsFn = Arc::new(move || api::health_body(&ai));
            let store = nvr_state.store.clone();
            Some(Mirror::start(&cfg, store, status.clone(), stats, stop_rx.clone()).await?)
        }
        None => None,
    };
    if args.demo {
        ingest::demo::ensure(&cfg, &nvr_state.store).await?;
    }
    let ingest_ctx = Arc::new(ingest::Ctx::new(
        &cfg,
        nvr_state.store.clone(),
        engine,
        clock,
    ));
    nvr_state.cameras = Some(ingest_ctx.stats.clone());
    metrics.register(ingest_ctx.stats.clone());
    let nvr_state = Arc::new(nvr_state);
    serve::raise_fd_limit(cfg.http.ai.max_connections + cfg.http.nvr.max_connections);
    let ai = TcpListener::bind(cfg.ai.listen)
        .await
        .with_context(|| format!("binding AI adapter on {}", cfg.ai.listen))?;
    let nvr = TcpListener::bind(cfg.nvr.listen)
        .await
        .with_context(|| format!("binding NVR core on {}", cfg.nvr.listen))?;
    println!(
        "listening ai={} nvr={}",
        ai.local_addr()?,
        nvr.local_addr()?
    );
    tracing::info!(ai = %ai.local_addr()?, nvr = %nvr.local_addr()?, "serving");
    // One token stops both servers; the watch ends live streams and cameras.
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown().await;
            let _ = stop_tx.send(true);
            stop.cancel();
        }
    });
    let ai_srv = serve::run(ai, api::router(state), cfg.http.ai.clone(), stop.clone());
    let nvr_srv = serve::run(
        nvr,
        crate::nvr::router(nvr_state),
        cfg.http.nvr.clone(),
        stop,
    );
    let cameras = Supervisor::spawn(ingest_ctx, stop_rx);
    tokio::try_join!(ai_srv, nvr_srv)?;
    // Cameras first: their last events (tracks ended) then reach the mirror's outbox.
    let _ = cameras.await;
    if let Some(m) = mirror {
        m.finish().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Opens the store, loads (or creates at first start) the JWT secret, and
/// creates the initial admin when there are no users yet.
async fn open_nvr(
    cfg: &Config,
    started: Instant,
    clock: Arc<dyn Clock>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<NvrState> {
    let db_path = super::db_path(cfg);
    let store = Store::open(&db_path, clock.clone(), cfg.nvr.stream_buffer)
        .with_context(|| format!("opening database {}", db_path.display()))?;
    let secret = super::init::prepare(cfg, &store).await?.jwt_secret;
    let n = &cfg.nvr;
    Ok(NvrState {
        keys: JwtKeys::new(
            secret.as_bytes(),
            n.access_token_ttl_s,
            n.refresh_token_ttl_s,
            clock.clone(),
        )?,
        limiter: LoginLimiter::new(
            n.login_failures_per_user,
            n.login_failures_per_ip,
            n.login_window_s,
            clock.clone(),
        ),
        tickets: Tickets::new(n.ticket_ttl_s, clock.clone()),
        store,
        clock,
        recordings_dir: cfg.paths.data_dir.join("recordings"),
        frames_dir: cfg.paths.frames_dir(),
        snapshots_dir: ingest::snapshots_dir(cfg),
        cameras: None,
        started,
        max_body: n.max_body_bytes,
        limits: crate::nvr::web::limits::Limits::new(n),
        shutdown,
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
