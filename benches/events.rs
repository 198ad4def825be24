//! The event log at scale: fills a database with 10 M event rows shaped
//! like the pipeline's (bulk insert, outside the writer, in a temp dir),
//! then measures `GET /api/v1/events` through the NVR router for the common
//! filters (first page and a deep page), the stream's resume query, the
//! bytes an event costs on disk, and how long retention's batches hold the
//! writer. It prints numbers for docs/performance.md; it asserts no speed.
//!
//! `cargo test --bench events` (the test profile: dependencies, SQLite
//! included, optimised). `EVENTS_BENCH_ROWS` sets the row count.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request};
use opennvr_edge::clock::{Clock, ManualClock};
use opennvr_edge::config::Config;
use opennvr_edge::nvr::store::{db, EventFilter, RawPayload, Store};
use opennvr_edge::nvr::{self, NvrState};
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// Cameras the rows are spread over, each making one event a second.
const CAMERAS: i64 = 8;
/// The first event: 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const DAY_MS: i64 = 86_400_000;
/// Timed runs of each query.
const RUNS: usize = 40;
/// Timed runs of the base's query (some scan the table).
const PEER_RUNS: usize = 5;
/// A `person_entered`/`person_left` snapshot of the demo camera (vtest,
/// 768x576, ffmpeg's `-q:v 4`): 54 files, 3 220 352 bytes, in a demo run.
const SNAPSHOT_BYTES: i64 = 59_636;

/// The kind of row `i` makes, in the demo's mix (153 events, 55 with a
/// snapshot, in 145 s): a small LCG so the mix is even but not periodic.
fn kind(i: i64) -> &'static str {
    let r = (i
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407)
        >> 33)
        .rem_euclid(153);
    match r {
        0..=27 => "person_entered",
        28..=54 => "person_left",
        55 => "camera_online",
        _ => "count_changed",
    }
}

/// Fills `path` with `rows` events: the schema's indexes are dropped, the
/// rows inserted in one transaction, the indexes built again (faster than
/// keeping them up to date row by row). Returns the table's bytes alone.
fn fill(path: &Path, rows: i64) -> u64 {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "synchronous", "OFF").unwrap();
    c.pragma_update(None, "cache_size", -262_144).unwrap();
    let indexes: Vec<(String, String)> = {
        let mut st = c
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL")
            .unwrap();
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    for (name, _) in &indexes {
        c.execute(&format!("DROP INDEX {name}"), []).unwrap();
    }
    let sha = "bb8ac7066f1700c6125da2b24660d96671ed800150dc42be87c7840b4604a8de";
    let t = Instant::now();
    c.execute_batch("BEGIN").unwrap();
    {
        let mut st = c
            .prepare(
                "INSERT INTO events (id, camera_id, type, label, score, track_id, started_at,
                     ended_at, bbox, snapshot_path, model_id, model_sha256, payload, created_at)
                 VALUES (?1, ?2, ?3, 'person', ?4, ?5, ?6, ?7, ?8, ?9, 'yolov4-tiny-416', ?10, ?11, ?12)",
            )
            .unwrap();
        for i in 0..rows {
            let (cam, n) = (i % CAMERAS, i / CAMERAS);
            let camera = format!("camera_{cam}");
            let at = T0 + n * 1000 + cam;
            let track = n / 3;
            let k = kind(i);
            let bbox = "[493.0,159.0,23.0,77.0]";
            let (track, score, ended, bbox, snap, payload) = match k {
                "person_entered" => (
                    Some(track),
                    Some(0.9609),
                    None,
                    Some(bbox),
                    Some(format!("{camera}/{at}-{track}-entered.jpg")),
                    "{}".to_string(),
                ),
                "person_left" => (
                    Some(track),
                    Some(0.8812),
                    Some(at),
                    Some(bbox),
                    Some(format!("{camera}/{at}-{track}-left.jpg")),
                    format!(r#"{{"entered_at":{},"duration_ms":6400}}"#, at - 6400),
                ),
                "camera_online" => (
                    None,
                    None,
                    None,
                    None,
                    None,
                    r#"{"down_ms":null,"restarts":0}"#.to_string(),
                ),
                _ => (
                    None,
                    None,
                    None,
                    None,
                    None,
                    format!(r#"{{"count":{},"previous":{}}}"#, n % 5, (n + 1) % 5),
                ),
            };
            let model_sha = snap.as_ref().map(|_| sha);
            st.execute(params![
                i + 1,
                camera,
                k,
                score,
                track,
                at,
                ended,
                bbox,
                snap,
                model_sha,
                payload,
                at + 400
            ])
            .unwrap();
        }
    }
    c.execute_batch("COMMIT").unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let table_bytes = file_bytes(path);
    println!(
        "filled {rows} rows in {:.1} s ({:.0} rows/s), table {:.1} MB",
        t.elapsed().as_secs_f64(),
        rows as f64 / t.elapsed().as_secs_f64(),
        table_bytes as f64 / 1e6
    );
    let t = Instant::now();
    for (_, sql) in &indexes {
        c.execute(sql, []).unwrap();
    }
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    println!(
        "built {} indexes in {:.1} s",
        indexes.len(),
        t.elapsed().as_secs_f64()
    );
    table_bytes
}

fn file_bytes(path: &Path) -> u64 {
    let wal = path.with_extension("db-wal");
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// p50 and p95 of `runs` timed calls of `f`, in ms (after one untimed call).
async fn time<F, Fut>(runs: usize, mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f().await;
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.5), percentile(&ms, 0.95))
}

async fn get(router: &axum::Router, token: &str, uri: &str) -> (u16, Vec<u8>) {
    let mut req = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let r = router.clone().oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let body = axum::body::to_bytes(r.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec();
    (status, body)
}

async fn login(router: &axum::Router, data: &Path) -> String {
    let password = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let body = json!({"username": "admin", "password": password.trim()}).to_string();
    let mut req = Request::post("/api/v1/auth/login-json")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let r = router.clone().oneshot(req).await.unwrap();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// The query string of `f` for `GET /api/v1/events`.
fn uri(f: &EventFilter) -> String {
    let mut q = vec![format!("limit={}", f.limit)];
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            q.push(format!("{k}={v}"));
        }
    };
    add("camera_id", f.camera_id.clone());
    add("type", f.kind.clone());
    add("label", f.label.clone());
    add("after", f.after.map(|v| v.to_string()));
    add("before", f.before.map(|v| v.to_string()));
    add("after_id", f.after_id.map(|v| v.to_string()));
    add("before_id", f.before_id.map(|v| v.to_string()));
    add(
        "order",
        Some(if f.ascending { "asc" } else { "desc" }.into()),
    );
    format!("/api/v1/events?{}", q.join("&"))
}

/// The page query as the base commit (5bae463) ran it: one statement for
/// every filter, each behind `?n IS NULL OR ...`, planned once for all.
/// The peer the new query is measured against; returns the rows read.
fn base_page(c: &Connection, f: &EventFilter) -> usize {
    let order = if f.ascending { "ASC" } else { "DESC" };
    let mut st = c
        .prepare_cached(&format!(
            "SELECT id, camera_id, type, label, score, track_id, started_at, ended_at, bbox,
                    snapshot_path, model_id, model_sha256, payload, created_at,
                    length(CAST(payload AS BLOB)) + coalesce(length(snapshot_path), 0)
             FROM events
             WHERE (?1 IS NULL OR camera_id = ?1) AND (?2 IS NULL OR type = ?2)
               AND (?3 IS NULL OR label = ?3) AND (?4 IS NULL OR started_at >= ?4)
               AND (?5 IS NULL OR started_at < ?5) AND (?6 IS NULL OR id > ?6)
               AND (?7 IS NULL OR id < ?7)
             ORDER BY id {order} LIMIT ?8"
        ))
        .unwrap();
    let mut rows = st
        .query(params![
            f.camera_id,
            f.kind,
            f.label,
            f.after,
            f.before,
            f.after_id,
            f.before_id,
            f.limit
        ])
        .unwrap();
    let mut n = 0;
    while let Some(r) = rows.next().unwrap() {
        for i in 0..15 {
            let _: rusqlite::types::Value = r.get(i).unwrap();
        }
        n += 1;
    }
    n
}

fn main() {
    let rows: i64 = std::env::var("EVENTS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = |k: &str| match k {
        "OPENNVR_DATA_DIR" => Some(data.display().to_string()),
        _ => None,
    };
    let cfg = Config::load(None, env).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let path = opennvr_edge::cmd::db_path(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The schema (every migration) first, as the daemon makes it.
    rt.block_on(async {
        let s = Store::open(&path, Arc::new(ManualClock::new(T0)), 16).unwrap();
        drop(s);
    });
    let empty = file_bytes(&path);
    let table = fill(&path, rows);
    let total = file_bytes(&path);
    let per_row = (total - empty) as f64 / rows as f64;
    let per_row_table = (table - empty) as f64 / rows as f64;
    // What each table and index costs per event (SQLite's dbstat).
    {
        let c = Connection::open(&path).unwrap();
        let mut st = c
            .prepare(
                "SELECT name, sum(pgsize) FROM dbstat WHERE name = 'events' OR name IN
                 (SELECT name FROM sqlite_master WHERE tbl_name = 'events') GROUP BY name ORDER BY 2 DESC",
            )
            .unwrap();
        let parts = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .unwrap();
        for p in parts {
            let (name, bytes) = p.unwrap();
            println!(
                "  {name:28} {:6.1} bytes per event",
                bytes as f64 / rows as f64
            );
        }
    }
    let snaps_per_event = 55.0 / 153.0;
    println!(
        "database {:.2} GB: {per_row:.0} bytes per event ({per_row_table:.0} table, {:.0} indexes)",
        total as f64 / 1e9,
        per_row - per_row_table
    );
    println!(
        "a busy camera-day (86 400 events): database {:.1} MB, snapshots {:.0} MB ({:.0} a day x {SNAPSHOT_BYTES} B)",
        per_row * 86_400.0 / 1e6,
        86_400.0 * snaps_per_event * SNAPSHOT_BYTES as f64 / 1e6,
        86_400.0 * snaps_per_event
    );
    let last = rows;
    let now = T0 + (rows / CAMERAS) * 1000;
    rt.block_on(async move {
        let clock = Arc::new(ManualClock::new(now));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let store = Store::open(&path, dyn_clock.clone(), 1024).unwrap();
        let prepared = opennvr_edge::cmd::init::prepare(&cfg, &store)
            .await
            .unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let state = Arc::new(
            NvrState::new(
                &cfg,
                store.clone(),
                prepared.jwt_secret.as_bytes(),
                dyn_clock,
                stop.clone(),
            )
            .unwrap(),
        );
        let router = nvr::router(state);
        let token = login(&router, &data).await;
        let hour = 3_600_000;
        let week_ago = now - 7 * DAY_MS;
        let deep = last / 2;
        let base = EventFilter {
            limit: 100,
            ..EventFilter::default()
        };
        let cam = || Some("camera_3".to_string());
        let queries: Vec<(&str, EventFilter)> = vec![
            ("newest page", base.clone()),
            ("camera", EventFilter { camera_id: cam(), ..base.clone() }),
            (
                "camera + type",
                EventFilter { camera_id: cam(), kind: Some("person_left".into()), ..base.clone() },
            ),
            ("type (rare)", EventFilter { kind: Some("camera_online".into()), ..base.clone() }),
            ("label", EventFilter { label: Some("person".into()), ..base.clone() }),
            (
                "1 h window, a week ago",
                EventFilter { after: Some(week_ago), before: Some(week_ago + hour), ..base.clone() },
            ),
            (
                "camera + 1 h window, a week ago",
                EventFilter {
                    camera_id: cam(),
                    after: Some(week_ago),
                    before: Some(week_ago + hour),
                    ..base.clone()
                },
            ),
            (
                "1 day window, a week ago",
                EventFilter { after: Some(week_ago), before: Some(week_ago + DAY_MS), ..base.clone() },
            ),
            ("deep page (before_id = half)", EventFilter { before_id: Some(deep), ..base.clone() }),
            (
                "camera deep page",
                EventFilter { camera_id: cam(), before_id: Some(deep), ..base.clone() },
            ),
            (
                "catch-up: after_id = half, 1000",
                EventFilter { after_id: Some(deep), limit: 1000, ascending: true, ..base.clone() },
            ),
        ];
        println!(
            "\nat {rows} rows: GET /api/v1/events p50 / p95 ms ({RUNS} runs); the page query alone, \
             before (base's SQL, {PEER_RUNS} runs) and after, p50 / p95 ms"
        );
        for (name, f) in &queries {
            let uri = uri(f);
            let (status, body) = get(&router, &token, &uri).await;
            assert_eq!(status, 200, "{uri}: {}", String::from_utf8_lossy(&body));
            let n = serde_json::from_slice::<Vec<Value>>(&body).unwrap().len();
            let (p50, p95) = time(RUNS, || async {
                get(&router, &token, &uri).await;
            })
            .await;
            let sql = |old: bool| {
                let (store, f) = (store.clone(), f.clone());
                async move {
                    let got = store
                        .read(move |c| {
                            Ok(if old {
                                base_page(c, &f)
                            } else {
                                db::event_page::<RawPayload>(c, &f)?.events.len()
                            })
                        })
                        .await
                        .unwrap();
                    assert_eq!(got, n);
                }
            };
            let (b50, b95) = time(PEER_RUNS, || sql(true)).await;
            let (a50, a95) = time(RUNS, || sql(false)).await;
            println!(
                "  {name:32} {p50:7.2} / {p95:7.2}  {n:5} ev {:7} B | SQL before {b50:8.2} / {b95:8.2}  after {a50:6.2} / {a95:6.2}",
                body.len()
            );
        }
        // The stream's resume: a client back after a day away replays from its id.
        let from = last - 86_400 * CAMERAS;
        let (p50, p95) = time(RUNS, || {
            let store = store.clone();
            async move {
                let f = EventFilter {
                    after_id: Some(from),
                    limit: 256,
                    ascending: true,
                    max_bytes: Some(1 << 20),
                    ..EventFilter::default()
                };
                store.read(move |c| db::list_events(c, &f)).await.unwrap();
            }
        })
        .await;
        println!("  {:32} {p50:7.2} / {p95:7.2}", "stream resume page (256)");
        let cam = "camera_3".to_string();
        let t = Instant::now();
        let cut = store
            .read(move |c| db::budget_cut(c, &cam, 1_000_000))
            .await
            .unwrap();
        println!(
            "budget cut for one camera at 1 000 000 rows kept: {:.1} ms ({cut:?})",
            t.elapsed().as_secs_f64() * 1000.0
        );
        let t = Instant::now();
        let cams = store.read(db::event_camera_ids).await.unwrap();
        println!(
            "cameras with events ({}): {:.2} ms",
            cams.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
        // Retention's batches: one day of the oldest events, 500 rows a job.
        let cutoff = T0 + DAY_MS;
        let mut holds = Vec::new();
        let t = Instant::now();
        let mut deleted = 0;
        loop {
            let (n, ms) = store
                .writer()
                .call(move |c, _| {
                    let t = Instant::now();
                    let n = db::delete_events_before(c, cutoff, None, 500)?;
                    Ok((n, t.elapsed().as_secs_f64() * 1000.0))
                })
                .await
                .unwrap();
            holds.push(ms);
            deleted += n;
            if n < 500 {
                break;
            }
        }
        let wall = t.elapsed().as_secs_f64();
        let trash = store
            .read(|c| db::snapshot_trash(c, usize::MAX))
            .await
            .unwrap()
            .len();
        holds.sort_by(f64::total_cmp);
        println!(
            "\nretention: {deleted} rows (a day of {CAMERAS} cameras) in {} jobs, {wall:.1} s; \
             writer held p50 {:.1} / p95 {:.1} / max {:.1} ms per 500-row job; {trash} snapshots to unlink",
            holds.len(),
            percentile(&holds, 0.5),
            percentile(&holds, 0.95),
            holds[holds.len() - 1]
        );
        drop(stop);
    });
}
