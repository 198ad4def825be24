//! The process's log: our `tracing` events and the dependencies' `log`
//! records (tract, tract-cuda, rumqttc, refinery; ort's are `tracing`
//! events already) through one filter,
//! `OPENNVR_LOG`, to stderr. The `log` records are forwarded by
//! tracing-subscriber's `tracing-log` feature (on by default): installing
//! the subscriber also installs its `LogTracer`.
//!
//! What is logged is already free of secrets: camera texts go through
//! [`crate::redact`] before they are logged, and no dependency is handed a
//! camera URL (only ffmpeg gets one, and its output is redacted by ingest).

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Dependencies that log routine steps at `info` (each migration applied or
/// not, the CPU kernels chosen, each CUDA kernel compiled, MQTT packet-id
/// collisions, onnxruntime's library opened by its `/proc/self/fd` name and
/// each session made): kept at `warn` unless `OPENNVR_LOG` names them
/// (`tract` covers every `tract_*` crate: a directive matches a target
/// prefix). Our own line says which onnxruntime file was loaded.
const QUIET: &str = "tract=warn,rumqttc=warn,refinery_core=warn,ort=warn";

/// The filter for `OPENNVR_LOG`'s value `env`: `info` and [`QUIET`], then
/// `env`'s directives, which replace ours for the same target (a bare level
/// replaces `info`; `refinery_core=info` brings the migrations back). An
/// invalid directive is skipped with a note on stderr, the rest still apply.
pub fn filter(env: Option<&str>) -> EnvFilter {
    let spec = format!("info,{QUIET},{}", env.unwrap_or_default());
    EnvFilter::builder().parse_lossy(spec)
}

/// The formatting subscriber: `filter`, lines to `writer`, colours only
/// when `ansi` (a terminal: the journal would store the escape codes).
fn subscriber<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .finish()
}

/// Installs the process's log (once, first thing in `main`): stderr,
/// filtered by `OPENNVR_LOG`, dependencies' `log` records included.
pub fn init() {
    let env = std::env::var("OPENNVR_LOG").ok();
    let ansi = std::io::stderr().is_terminal();
    subscriber(filter(env.as_deref()), std::io::stderr, ansi).init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Capture {
            self.clone()
        }
    }

    /// What `log` records from dependency-like targets and one of our own
    /// events print under `OPENNVR_LOG=env`.
    fn logged(env: Option<&str>) -> String {
        // What `init` installs with the subscriber (the test binary has no
        // global subscriber; the records go to this thread's default).
        let _ = tracing_log::LogTracer::init();
        let out = Capture::default();
        let sub = subscriber(filter(env), out.clone(), false);
        tracing::subscriber::with_default(sub, || {
            log::warn!(target: "tract_cuda::context", "cubin cache unwritable");
            log::info!(target: "tract_linalg::x86_64", "CPU optimisation: fma");
            log::info!(target: "refinery_core::traits::sync", "applying migration: V1");
            log::debug!(target: "rumqttc::state", "outgoing publish");
            tracing::info!("cameras started");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn dependencies_log_records_reach_our_log_through_the_same_filter() {
        let text = logged(None);
        assert!(
            text.contains("WARN tract_cuda::context: cubin cache unwritable"),
            "{text}"
        );
        assert!(text.contains("INFO opennvr_edge::cmd::logging"), "{text}");
        for quiet in ["CPU optimisation", "applying migration", "outgoing publish"] {
            assert!(!text.contains(quiet), "{quiet} is noise by default: {text}");
        }
        assert!(!text.contains('\u{1b}'), "no colour codes off a terminal");

        // Named, a dependency speaks again; a bare level replaces `info`.
        let text = logged(Some("warn,refinery_core=info,rumqttc=debug"));
        assert!(text.contains("applying migration: V1"), "{text}");
        assert!(text.contains("outgoing publish"), "{text}");
        assert!(text.contains("cubin cache unwritable"), "{text}");
        assert!(!text.contains("cameras started"), "{text}");
        assert!(!text.contains("CPU optimisation"), "{text}");

        // An invalid directive is skipped; the defaults still hold.
        let text = logged(Some("tract_cuda=loud"));
        assert!(text.contains("cubin cache unwritable"), "{text}");
        assert!(text.contains("cameras started"), "{text}");
    }
}
