//! `opennvr-edge run`: serve the AI adapter and the NVR core, and run the
//! cameras, until signalled.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::api::{self, AiState};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::console::ConsoleState;
use crate::hw::Hardware;
use crate::ingest::{self, Supervisor};
use crate::mqtt::{Mirror, StatsFn, Status};
use crate::nvr::store::Store;
use crate::nvr::NvrState;
use crate::paths::DataDir;
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
/// each ffmpeg closes its last chunk. A second signal exits at once.
///
/// One [`CancellationToken`] stops everything: both servers take it, and
/// each camera, live event stream and the MQTT session a child of it.
pub async fn run(mut cfg: Config, args: RunArgs) -> anyhow::Result<()> {
    // First, so a signal during startup is a clean stop too.
    let stop = CancellationToken::new();
    tokio::spawn(on_signals(Signals::register(), stop.clone()));
    if args.demo {
        ingest::demo::adjust(&mut cfg);
    }
    std::fs::create_dir_all(&cfg.paths.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.paths.data_dir.display()))?;
    let hw = Arc::new(Hardware::probe());
    let engine = super::build_engine_on(&cfg, &hw)?;
    engine.check_detect_models(&cfg.ingest.detect_models, &cfg.ingest.camera_model)?;
    tracing::info!(
        model = engine.camera_model(&cfg.ingest.camera_model),
        runtime = engine.backend_name(),
        "cameras' detector"
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mqtt = cfg.mqtt.enabled().then(Status::new);
    let mut ai_state = AiState::new(&cfg, engine.clone(), hw).with_context(|| {
        format!(
            "opening frames dir {}",
            DataDir::new(&cfg.paths).frames().display()
        )
    })?;
    ai_state.mqtt = mqtt
        .clone()
        .map(|s| -> api::HealthPart { Arc::new(move || serde_json::json!(s.report())) });
    if let Some(status) = &mqtt {
        ai_state.metrics.register(Arc::new(status.clone()));
    }
    ai_state.shutdown = stop.child_token();
    let state = Arc::new(ai_state);
    if let Some(w) = state.auth.warning() {
        tracing::warn!("{w}");
    }
    let mut nvr_state = open_nvr(&cfg, clock.clone(), stop.clone()).await?;
    let mirror = match mqtt {
        Some(status) => {
            let ai = state.clone();
            let stats: StatsFn = Arc::new(move || api::health_body(&ai));
            let store = nvr_state.store.clone();
            let clock = clock.clone();
            Some(Mirror::start(&cfg, store, status, stats, &stop, clock).await?)
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
    state.metrics.register(ingest_ctx.stats.clone());
    let nvr_state = Arc::new(nvr_state);
    let mut console = ConsoleState::new(&cfg, nvr_state.clone());
    let ai_health = state.clone();
    console.health = Some(Arc::new(move || api::health_body(&ai_health)));
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
    let cameras = Supervisor::spawn(ingest_ctx, stop.clone());
    let ai_srv = serve::run(ai, api::router(state), cfg.http.ai.clone(), stop.clone());
    let nvr_srv = serve::run(
        nvr,
        // The console's pages beside the JSON API; the NVR router keeps the fallback.
        crate::console::router(Arc::new(console)).merge(crate::nvr::router(nvr_state)),
        cfg.http.nvr.clone(),
        stop,
    );
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
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> anyhow::Result<NvrState> {
    let db_path = super::db_path(cfg);
    let store = Store::open(&db_path, clock.clone(), cfg.nvr.stream_buffer)
        .with_context(|| format!("opening database {}", db_path.display()))?;
    let secret = super::init::prepare(cfg, &store).await?.jwt_secret;
    Ok(NvrState::new(
        cfg,
        store,
        secret.as_bytes(),
        clock,
        shutdown,
    )?)
}

/// SIGINT and SIGTERM, each registered once, here and nowhere else. One
/// that cannot be registered keeps its default action (the process ends),
/// so the other still works and nothing waits forever.
struct Signals {
    int: Option<Signal>,
    term: Option<Signal>,
}

impl Signals {
    /// Registers both now (synchronously, so no signal slips past between
    /// startup and the watcher task's first poll).
    fn register() -> Self {
        let listen = |kind, name: &str| {
            signal(kind)
                .inspect_err(
                    |e| tracing::warn!(signal = name, error = %e, "cannot listen for signal"),
                )
                .ok()
        };
        Self {
            int: listen(SignalKind::interrupt(), "SIGINT"),
            term: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }

    /// The next SIGINT or SIGTERM: its name and the exit code a shell gives it.
    async fn next(&mut self) -> (&'static str, i32) {
        // A signal that is not listened for never arrives here.
        async fn recv(s: &mut Option<Signal>) {
            if let Some(s) = s {
                if s.recv().await.is_some() {
                    return;
                }
            }
            std::future::pending().await
        }
        tokio::select! {
            _ = recv(&mut self.int) => ("SIGINT", 128 + libc::SIGINT),
            _ = recv(&mut self.term) => ("SIGTERM", 128 + libc::SIGTERM),
        }
    }
}

/// The first signal cancels `stop` (a clean stop: every ffmpeg closes its
/// chunk); a second one exits the process at once with the shell's code for
/// it (130, 143). The ffmpeg children then get one SIGTERM from their
/// shims, as after a crash, and the next start repairs the rest
/// (docs/ingest.md).
async fn on_signals(mut signals: Signals, stop: CancellationToken) {
    let (name, _) = signals.next().await;
    tracing::info!(
        signal = name,
        "stopping; a second signal exits at once, without a clean stop"
    );
    stop.cancel();
    let (name, code) = signals.next().await;
    tracing::warn!(
        signal = name,
        code,
        "second signal: exiting now; the next start repairs what is left"
    );
    std::process::exit(code);
}
