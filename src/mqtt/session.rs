//! The mirror task: connect, publish the outbox in id order, follow PUBACKs,
//! reconnect with backoff, say `stopped` on the way out.
//!
//! One task drives rumqttc's event loop and publishes with `try_publish`,
//! never awaiting the client, so it cannot deadlock against its own loop.
//! Each connection is a fresh client with a clean session: after a loss the
//! outbox is replayed from the acknowledged cursor, so an event whose PUBACK
//! was lost is published again with the same `event_id` (at least once).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{broadcast, watch};
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::discovery::{device_config, object_id};
use super::inflight::{Inflight, Tag};
use super::topics::{label_of, Derived, Topics};
use super::{snapshot, StatsFn, Status, REQUEST_CAP};
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::nvr::store::{db, outbox, Camera, Event as StoredEvent, EventFilter, Store};

/// Most publishes awaiting PUBACK in rumqttc (its `inflight`).
pub const INFLIGHT: u16 = 100;
/// Outbox messages we keep outstanding; below [`INFLIGHT`] so discovery and
/// stats always fit.
const WINDOW: usize = 64;
/// How often the camera list is compared with what discovery announced.
const CAMERA_POLL: Duration = Duration::from_secs(5);
/// Reconnect backoff bounds (ms): the broker is usually on the LAN or the
/// box itself, so retries stay frequent.
const BACKOFF_MIN_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 5_000;
/// How long a clean shutdown waits for `stopped` to be acknowledged.
const GOODBYE: Duration = Duration::from_secs(3);

/// Everything the mirror task owns.
pub(super) struct Session {
    pub options: MqttOptions,
    pub topics: Topics,
    pub node: String,
    pub cap: i64,
    pub stats_every: Duration,
    pub snapshots_dir: PathBuf,
    pub store: Store,
    pub status: Status,
    pub stats: StatsFn,
    pub live: broadcast::Receiver<Arc<StoredEvent>>,
    /// This session's child of the daemon's shutdown token.
    pub shutdown: CancellationToken,
    /// Times the reconnect backoff.
    pub clock: Arc<dyn Clock>,
    /// The newest acknowledged event (a prefix of the outbox).
    pub cursor: i64,
    /// Counts and track states remembered between events.
    pub derived: Derived,
}

/// How a connection ended.
enum Ended {
    Shutdown,
    Lost { was_up: bool },
}

/// One connection's publishing state.
struct Conn {
    client: AsyncClient,
    inflight: Inflight,
    /// The newest event handed to the client in this connection.
    queued: i64,
    /// The last read found nothing more; wait for a live event.
    exhausted: bool,
    /// Cameras announced to Home Assistant, by device object id.
    announced: BTreeMap<String, Camera>,
    /// An event message could not be queued: later acknowledgements must not
    /// move the cursor past it, so this connection is given up and replayed.
    broken: bool,
}

impl Session {
    /// Runs until shutdown: connect, mirror, and on loss back off and retry.
    pub async fn run(mut self) {
        let (persist_tx, persist_rx) = watch::channel(self.cursor);
        let persister = tokio::spawn(persist(self.store.clone(), self.status.clone(), persist_rx));
        let mut backoff = Backoff::new(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
        let mut failures = 0u64;
        loop {
            self.enforce_cap(&persist_tx).await;
            match self.connection(&persist_tx, failures == 0).await {
                Ended::Shutdown => break,
                Ended::Lost { was_up } => {
                    self.status.set_connected(false);
                    if was_up {
                        backoff.reset();
                        failures = 0;
                    } else {
                        failures += 1;
                    }
                }
            }
            if !backoff.wait(&*self.clock, &self.shutdown).await {
                break;
            }
        }
        self.status.set_connected(false);
        drop(persist_tx);
        let _ = persister.await;
        tracing::debug!("MQTT mirror stopped");
    }

    /// Refreshes `pending` and, when more than the cap wait, drops the
    /// oldest through the writer (counted in `dropped`). The count runs on a
    /// read connection, so the writer is only involved when something drops.
    async fn enforce_cap(&mut self, persist: &watch::Sender<i64>) {
        let after = self.cursor;
        let waiting = match self.store.read(move |c| outbox::pending(c, after)).await {
            Ok(n) => n,
            Err(e) => return tracing::warn!(error = %e, "MQTT outbox unreadable"),
        };
        self.status.set_pending(waiting);
        if waiting <= self.cap {
            return;
        }
        let cap = self.cap;
        match self
            .store
            .writer()
            .call(move |c, _| outbox::enforce_cap(c, cap))
            .await
        {
            Ok(s) => {
                if s.last_sent_id > self.cursor {
                    self.cursor = s.last_sent_id;
                    persist.send_replace(s.last_sent_id);
                }
                self.status.set_dropped(s.dropped);
                tracing::warn!(
                    dropped = s.dropped,
                    "MQTT outbox over its cap; oldest events dropped"
                );
            }
            Err(e) => tracing::warn!(error = %e, "MQTT outbox cap check failed"),
        }
        self.refresh_pending().await;
    }

    async fn refresh_pending(&self) {
        let after = self.cursor;
        if let Ok(n) = self.store.read(move |c| outbox::pending(c, after)).await {
            self.status.set_pending(n);
        }
    }

    /// One connection, from CONNECT to its loss or to shutdown.
    /// `loud`: log a failure to connect as a warning (the first of a streak).
    async fn connection(&mut self, persist: &watch::Sender<i64>, loud: bool) -> Ended {
        let (client, mut events) = AsyncClient::new(self.options.clone(), REQUEST_CAP);
        events.network_options.set_connection_timeout(5);
        let mut conn = Conn {
            client,
            inflight: Inflight::default(),
            queued: self.cursor,
            exhausted: false,
            announced: BTreeMap::new(),
            broken: false,
        };
        let mut up = false;
        let mut stats = interval(self.stats_every);
        stats.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut cameras = interval(CAMERA_POLL);
        cameras.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if up && !conn.exhausted && conn.inflight.len() < WINDOW / 2 {
                self.fill(&mut conn).await;
            }
            if conn.broken {
                tracing::warn!("MQTT request queue full; reconnecting to replay the outbox");
                return Ended::Lost { was_up: true };
            }
            tokio::select! {
                ev = events.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        up = true;
                        self.status.set_connected(true);
                        tracing::info!("MQTT connected");
                        self.on_connect(&mut conn).await;
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                        conn.inflight.assigned(pkid);
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(id) = conn.inflight.acked(ack.pkid) {
                            self.cursor = self.cursor.max(id);
                            persist.send_replace(self.cursor);
                        }
                        if conn.exhausted && conn.inflight.is_empty() {
                            self.refresh_pending().await;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        self.on_message(&mut conn, &p.topic, &p.payload).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log_loss(&e, up, loud);
                        return Ended::Lost { was_up: up };
                    }
                },
                r = self.live.recv(), if up => {
                    if !matches!(r, Err(broadcast::error::RecvError::Closed)) {
                        conn.exhausted = false;
                    }
                }
                _ = stats.tick(), if up => self.publish_stats(&mut conn).await,
                _ = cameras.tick(), if up => self.announce(&mut conn, false).await,
                _ = self.shutdown.cancelled() => {
                    if up {
                        self.goodbye(&mut conn, &mut events, persist).await;
                    }
                    return Ended::Shutdown;
                }
            }
        }
    }

    /// Hands `payload` to the client as a QoS 1 publish and tracks it.
    fn publish(&self, conn: &mut Conn, topic: String, retain: bool, payload: Vec<u8>, tag: Tag) {
        match conn
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => conn.inflight.push(tag),
            // Only a full request queue gets here (topics are checked before).
            // A lost state or discovery message is repaired by the next one;
            // a lost event message must not be skipped: replay from the cursor.
            Err(e) => {
                tracing::warn!(error = %e, "MQTT publish not queued");
                conn.broken |= matches!(tag, Tag::Event(_));
            }
        }
    }

    /// `online`, subscriptions, discovery.
    async fn on_connect(&mut self, conn: &mut Conn) {
        let t = self.topics.available();
        self.publish(conn, t, true, b"online".to_vec(), Tag::Other);
        if self.topics.discovery_on() {
            let subs = [self.topics.ha_status(), self.topics.ha_device_filter()];
            for s in subs {
                if let Err(e) = conn.client.try_subscribe(s, QoS::AtLeastOnce) {
                    tracing::warn!(error = %e, "MQTT subscribe not queued");
                }
            }
            self.announce(conn, true).await;
        }
    }

    /// Publishes the device config of new or changed cameras (all of them
    /// when `all`), and removes the devices of deleted ones.
    async fn announce(&mut self, conn: &mut Conn, all: bool) {
        if !self.topics.discovery_on() {
            return;
        }
        let cams = match self.store.read(db::list_cameras).await {
            Ok(c) => c,
            Err(e) => return tracing::warn!(error = %e, "MQTT discovery: cameras unreadable"),
        };
        let now: BTreeMap<String, Camera> = cams
            .into_iter()
            .map(|c| (object_id(&self.node, &c.id), c))
            .collect();
        let gone: Vec<String> = conn
            .announced
            .keys()
            .filter(|k| !now.contains_key(*k))
            .cloned()
            .collect();
        for obj in gone {
            let t = self.topics.ha_device(&obj);
            self.publish(conn, t, true, Vec::new(), Tag::Other);
        }
        for (obj, cam) in &now {
            let same = conn
                .announced
                .get(obj)
                .is_some_and(|old| old.id == cam.id && old.name == cam.name);
            if all || !same {
                let body = device_config(&self.topics, &self.node, cam).to_string();
                let t = self.topics.ha_device(obj);
                self.publish(conn, t, true, body.into_bytes(), Tag::Other);
            }
        }
        conn.announced = now;
    }

    /// Home Assistant came online: announce again. A retained device config
    /// of ours for a camera that no longer exists: remove it.
    async fn on_message(&mut self, conn: &mut Conn, topic: &str, payload: &[u8]) {
        if topic == self.topics.ha_status() {
            if payload == b"online" {
                self.announce(conn, true).await;
            }
            return;
        }
        let Some(obj) = self.topics.ha_device_id(topic) else {
            return;
        };
        let ours = obj.starts_with(&format!("{}_", self.node));
        if ours && !payload.is_empty() && !conn.announced.contains_key(obj) {
            tracing::info!(
                device = obj,
                "removing the discovery config of a deleted camera"
            );
            let t = topic.to_owned();
            self.publish(conn, t, true, Vec::new(), Tag::Other);
        }
    }

    /// Publishes the next outbox events: their states and snapshot first,
    /// then the event message, whose PUBACK therefore implies theirs.
    async fn fill(&mut self, conn: &mut Conn) {
        let room = WINDOW.saturating_sub(conn.inflight.len()) / 4;
        let filter = EventFilter {
            after_id: Some(conn.queued),
            limit: room.max(1) as u32,
            ascending: true,
            ..EventFilter::default()
        };
        let limit = filter.limit as usize;
        let page = match self.store.read(move |c| db::list_events(c, &filter)).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "MQTT outbox unreadable");
                conn.exhausted = true;
                return;
            }
        };
        conn.exhausted = page.len() < limit;
        for e in &page {
            self.publish_event(conn, e).await;
            conn.queued = e.id;
        }
        if !page.is_empty() {
            self.refresh_pending().await;
        }
    }

    async fn publish_event(&mut self, conn: &mut Conn, e: &StoredEvent) {
        let replay = self.derived.begin(e.id);
        for s in self.derived.states(&self.topics, e, replay) {
            self.publish(conn, s.topic, true, s.payload.into_bytes(), Tag::Other);
        }
        let mut has_snapshot = false;
        if let Some(rel) = &e.snapshot_path {
            if let Some(jpeg) = snapshot::load(&self.snapshots_dir, rel).await {
                if super::topics::is_topic_level(&e.camera_id)
                    && super::topics::is_topic_level(label_of(e))
                {
                    let t = self.topics.snapshot(&e.camera_id, label_of(e));
                    self.publish(conn, t, true, jpeg, Tag::Other);
                    has_snapshot = true;
                }
            }
        }
        let msg = self
            .derived
            .event_message(e, has_snapshot, replay)
            .to_string();
        let t = self.topics.events();
        self.publish(conn, t, false, msg.into_bytes(), Tag::Event(e.id));
    }

    async fn publish_stats(&mut self, conn: &mut Conn) {
        let stats = self.stats.clone();
        if let Ok(body) = tokio::task::spawn_blocking(move || stats()).await {
            let t = self.topics.stats();
            self.publish(conn, t, false, body.to_string().into_bytes(), Tag::Other);
        }
    }

    /// `stopped` (retained); waits (bounded) until it and everything before
    /// it is acknowledged, then DISCONNECT, and waits for the broker to close
    /// the socket. Closing first could reset the connection with our last
    /// packets unread, and the broker would send the Last Will instead.
    async fn goodbye(
        &mut self,
        conn: &mut Conn,
        events: &mut EventLoop,
        persist: &watch::Sender<i64>,
    ) {
        let t = self.topics.available();
        self.publish(conn, t, true, b"stopped".to_vec(), Tag::Other);
        let deadline = Instant::now() + GOODBYE;
        let mut disconnecting = false;
        loop {
            if conn.inflight.is_empty() && !disconnecting {
                disconnecting = conn.client.try_disconnect().is_ok();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, events.poll()).await {
                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) if pkid != 0 => {
                    conn.inflight.assigned(pkid);
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some(id) = conn.inflight.acked(ack.pkid) {
                        self.cursor = self.cursor.max(id);
                        persist.send_replace(self.cursor);
                    }
                }
                Ok(Ok(_)) => {}
                // The broker closed the connection (after our DISCONNECT), or time is up.
                Ok(Err(_)) | Err(_) => break,
            }
        }
    }
}

/// Saves the acknowledged cursor through the writer, coalescing: while one
/// save commits, newer acknowledgements just replace the value to save next.
async fn persist(store: Store, status: Status, mut rx: watch::Receiver<i64>) {
    let mut saved = *rx.borrow_and_update();
    while rx.changed().await.is_ok() {
        let id = *rx.borrow_and_update();
        if id <= saved {
            continue;
        }
        match store
            .writer()
            .call(move |c, _| outbox::mark_sent(c, id))
            .await
        {
            Ok(()) => {
                saved = id;
                status.set_last_sent(id);
            }
            // Not fatal: the events are published again after a restart.
            Err(e) => tracing::warn!(error = %e, "MQTT cursor not saved"),
        }
    }
}

/// A lost connection, or the first failed attempt of a streak, is worth a
/// warning; further retries against an absent broker are debug.
fn log_loss(e: &ConnectionError, was_up: bool, loud: bool) {
    if was_up {
        tracing::warn!(error = %e, "MQTT connection lost; events wait in the outbox");
    } else if loud {
        tracing::warn!(error = %e, "MQTT connect failed; retrying");
    } else {
        tracing::debug!(error = %e, "MQTT connect failed; retrying");
    }
}
