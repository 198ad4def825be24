//! `opennvr-edge run`: serve the AI adapter and the NVR core until signalled.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AiState};
use crate::config::Config;
use crate::frame::FrameStore;
use crate::hw::Hardware;

/// Binds both ports, prints one `listening ai=ADDR nvr=ADDR` line on stdout
/// (tests and scripts read the real ports from it when given port 0), and
/// serves until SIGINT or SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.paths.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.paths.data_dir.display()))?;
    let frames_dir = cfg.paths.frames_dir();
    let frames = FrameStore::new(&frames_dir, cfg.ai.max_body_bytes as u64)
        .with_context(|| format!("opening frames dir {}", frames_dir.display()))?;
    let engine = super::build_engine(&cfg)?;
    let hw = Arc::new(Hardware::probe());
    if hw.has_gpu() {
        tracing::info!(
            "NVIDIA GPU found; inference stays on tract-cpu until a GPU backend is configured"
        );
    }
    let state = Arc::new(AiState {
        engine,
        frames,
        hw,
        started,
        max_body: cfg.ai.max_body_bytes,
        max_pixels: cfg.ai.max_image_pixels,
    });
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
    let ai_srv = axum::serve(ai, api::router(state)).with_graceful_shutdown(shutdown());
    let nvr_srv = axum::serve(nvr, crate::nvr::router(started)).with_graceful_shutdown(shutdown());
    tokio::try_join!(ai_srv, nvr_srv)?;
    tracing::info!("stopped");
    Ok(())
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
