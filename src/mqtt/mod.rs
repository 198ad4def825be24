//! The MQTT mirror: stored events go to a broker, durably, in Frigate's
//! topic shapes, with Home Assistant discovery. Topics and guarantees:
//! `docs/mqtt.md`.
//!
//! Why it is built this way: the events table is already a durable queue in
//! id order, so the outbox is only a cursor into it (`store::outbox`), moved
//! through the one writer after the broker's PUBACK. The mirror reads the
//! store, never writes events, and talks to the broker from its own task, so
//! a broker that is slow or away never holds up the daemon or the store.

mod discovery;
mod inflight;
mod session;
mod snapshot;
mod status;
mod topics;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use status::Status;

use crate::clock::Clock;
use crate::config::{Config, MqttConfig};
use crate::nvr::store::{outbox, Store, StoreError};
use crate::paths::DataDir;
use topics::{is_topic_level, Derived, Topics};

/// Produces the `/health` body for `<prefix>/stats` (blocking; run off the async threads).
pub type StatsFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Why the mirror could not start; reported at startup. At run time the
/// mirror only logs and retries: the broker being away is not an error.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A setting cannot work (a wildcard in the prefix, say).
    #[error("invalid mqtt setting: {0}")]
    Config(String),
    /// `tls = true` in a build without the `mqtt-tls` feature.
    #[error("mqtt.tls needs a build with the mqtt-tls feature")]
    TlsNotBuilt,
    /// The node id file could not be read or written.
    #[error("mqtt node id file {path}: {cause}")]
    NodeId {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The outbox cursor could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The running mirror; [`Mirror::finish`] waits for its clean goodbye.
pub struct Mirror {
    task: JoinHandle<()>,
}

/// How long shutdown waits for `stopped` to be acknowledged and the cursor saved.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

impl Mirror {
    /// Checks the settings, starts the outbox cursor (through the writer, so
    /// no event can slip in between) and spawns the mirror task. It stops
    /// when `shutdown` is cancelled, after publishing `stopped`; `clock`
    /// times its reconnect backoff.
    pub async fn start(
        cfg: &Config,
        store: Store,
        status: Status,
        stats: StatsFn,
        shutdown: &CancellationToken,
        clock: Arc<dyn Clock>,
    ) -> Result<Mirror, MqttError> {
        let m = &cfg.mqtt;
        let prefix = m.topic_prefix.trim_end_matches('/');
        if prefix.is_empty() || !prefix.split('/').all(is_topic_level) {
            return Err(MqttError::Config(format!(
                "topic_prefix {:?}",
                m.topic_prefix
            )));
        }
        if !m.discovery_prefix.is_empty() && !is_topic_level(&m.discovery_prefix) {
            return Err(MqttError::Config(format!(
                "discovery_prefix {:?}",
                m.discovery_prefix
            )));
        }
        let node = node_id(m, &DataDir::new(&cfg.paths))?;
        let topics = Topics::new(prefix, &m.discovery_prefix);
        let options = options(m, &node, &topics)?;
        // Subscribe before reading the cursor: every event is then either
        // below the cursor, read from the store, or announced live.
        let live = store.subscribe();
        let state = store.writer().call(|c, _| outbox::init(c)).await?;
        status.set_last_sent(state.last_sent_id);
        status.set_dropped(state.dropped);
        let session = session::Session {
            options,
            topics,
            node,
            cap: i64::try_from(m.outbox_cap).unwrap_or(i64::MAX),
            stats_every: Duration::from_secs(m.stats_interval_s.max(1)),
            snapshots_dir: DataDir::new(&cfg.paths).snapshots(),
            store,
            status,
            stats,
            live,
            shutdown: shutdown.child_token(),
            clock,
            cursor: state.last_sent_id,
            derived: Derived::default(),
        };
        tracing::info!(host = %m.host, port = m.port, "mirroring events to MQTT");
        Ok(Mirror {
            task: tokio::spawn(session.run()),
        })
    }

    /// Waits (bounded) for the mirror to say `stopped` and save its cursor.
    pub async fn finish(self) {
        if tokio::time::timeout(FINISH_TIMEOUT, self.task)
            .await
            .is_err()
        {
            tracing::warn!("MQTT mirror did not stop in time");
        }
    }
}

/// The configured node id, or the one generated at first start.
fn node_id(m: &MqttConfig, data: &DataDir) -> Result<String, MqttError> {
    if !m.node_id.is_empty() {
        return Ok(discovery::sanitize(&m.node_id));
    }
    let path = data.mqtt_node_id();
    let err = |cause| MqttError::NodeId {
        path: path.clone(),
        cause,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(discovery::sanitize(s.trim())),
        Ok(_) => Err(err(std::io::ErrorKind::InvalidData.into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("opennvr_{:08x}", rand::random::<u32>());
            std::fs::write(&path, format!("{id}\n")).map_err(err)?;
            Ok(id)
        }
        Err(e) => Err(err(e)),
    }
}

/// Requests queued towards the event loop at most (the window plus
/// discovery and stats).
pub(crate) const REQUEST_CAP: usize = 4096;

/// Connection options: clean session, Last Will `offline` (retained), and
/// packets big enough for a snapshot.
fn options(m: &MqttConfig, node: &str, topics: &Topics) -> Result<MqttOptions, MqttError> {
    let client_id = if m.client_id.is_empty() {
        format!("opennvr-edge-{node}")
    } else {
        m.client_id.clone()
    };
    let mut o = MqttOptions::new(client_id, m.host.clone(), m.port);
    o.set_keep_alive(Duration::from_secs(30))
        // Our durability is the outbox; a broker-side session would replay
        // publishes a second time, in an order we do not control.
        .set_clean_session(true)
        .set_inflight(session::INFLIGHT)
        .set_request_channel_capacity(REQUEST_CAP)
        // Incoming: Home Assistant configs of other devices (a few KiB each);
        // a bigger packet would drop the connection, so leave a wide margin.
        .set_max_packet_size(
            1024 * 1024,
            snapshot::MAX_SNAPSHOT_BYTES as usize + 64 * 1024,
        )
        .set_last_will(LastWill::new(
            topics.available(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if !m.username.is_empty() {
        o.set_credentials(m.username.clone(), m.password.clone());
    }
    if m.tls {
        #[cfg(feature = "mqtt-tls")]
        o.set_transport(rumqttc::Transport::tls_with_default_config());
        #[cfg(not(feature = "mqtt-tls"))]
        return Err(MqttError::TlsNotBuilt);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_configured_or_generated_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("onvr-node-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = MqttConfig::default();
        let dir = DataDir::new(&crate::config::PathsConfig {
            data_dir: dir,
            ..Default::default()
        });
        let first = node_id(&m, &dir).unwrap();
        assert!(first.starts_with("opennvr_") && first.len() == "opennvr_".len() + 8);
        assert_eq!(node_id(&m, &dir).unwrap(), first, "kept across restarts");
        m.node_id = "my box".into();
        assert_eq!(node_id(&m, &dir).unwrap(), "my_box");
    }
}
