//! Schema upgrades: a database made by each earlier schema (only the first
//! migrations run, with rows in every table), then opened by today's
//! `Store`: every row is kept, the schema is the newest, and the newer
//! schemas' rules hold on the upgraded file.

use std::path::Path;
use std::sync::Arc;

use opennvr_edge::clock::ManualClock;
use opennvr_edge::nvr::store::{NewEvent, Store};
use rusqlite::Connection;

use crate::harness::T0_MS;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The versions in `migrations/` (`V<n>__name.sql`), ascending.
fn versions() -> Vec<i32> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut v: Vec<i32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix('V')?.split_once("__")?.0.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

/// A database at schema `version`, with a user, an API token, a camera, a
/// recording and three events (the newest deleted, as retention would, so the
/// id high-water mark is above the highest id).
fn old_database(path: &Path, version: i32) {
    let mut c = Connection::open(path).unwrap();
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(version))
        .run(&mut c)
        .unwrap();
    let t = T0_MS - 86_400_000;
    c.execute_batch(&format!(
        "INSERT INTO users (id, username, password_hash, role, token_version, created_at, updated_at)
             VALUES (1, 'admin', 'hash-of-admin', 'admin', 2, {t}, {t});
         INSERT INTO api_tokens (id, user_id, name, token_hash, role, created_at)
             VALUES (1, 1, 'frigate', '{h}', 'viewer', {t});
         INSERT INTO cameras (id, name, source_url, enabled, detect_fps, record, retention_days, created_at, updated_at)
             VALUES ('door', 'Door', 'rtsp://u:p@10.0.0.5/s', 1, 4, 0, 9, {t}, {t});
         INSERT INTO recordings (id, camera_id, start_ms, end_ms, size_bytes, path)
             VALUES (1, 'door', {t}, {e}, 1234, 'door/a.mp4');
         INSERT INTO events (id, camera_id, type, track_id, started_at, payload, created_at)
             VALUES (1, 'door', 'person_entered', 7, {t}, '{{\"zone\":\"a\"}}', {t}),
                    (2, 'door', 'count_changed', NULL, {t}, '{{\"count\":1}}', {t}),
                    (3, 'door', 'count_changed', NULL, {e}, '{{}}', {t});
         DELETE FROM events WHERE id = 3;",
        h = "ab".repeat(32),
        e = t + 60_000,
    ))
    .unwrap();
    if version >= 3 {
        c.execute("UPDATE mqtt_outbox SET last_sent_id = 2, dropped = 5", [])
            .unwrap();
    }
}

fn one<T: rusqlite::types::FromSql>(c: &Connection, sql: &str) -> T {
    c.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn every_earlier_schema_upgrades_keeping_its_rows() {
    let all = versions();
    let newest = *all.last().unwrap();
    assert!(all.len() >= 2, "migrations: {all:?}");
    for &version in &all[..all.len() - 1] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opennvr.db");
        old_database(&path, version);

        let store = Store::open(&path, Arc::new(ManualClock::new(T0_MS)), 16)
            .unwrap_or_else(|e| panic!("upgrading V{version}: {e}"));
        let c = Connection::open(&path).unwrap();
        let at = format!("from V{version}");
        assert_eq!(
            one::<i32>(&c, "SELECT max(version) FROM refinery_schema_history"),
            newest,
            "{at}"
        );
        assert_eq!(
            one::<String>(
                &c,
                "SELECT username || role || token_version || password_hash FROM users"
            ),
            "adminadmin2hash-of-admin",
            "{at}"
        );
        assert_eq!(
            one::<String>(&c, "SELECT name || role || user_id FROM api_tokens"),
            "frigateviewer1",
            "{at}"
        );
        assert_eq!(
            one::<String>(
                &c,
                "SELECT name || source_url || detect_fps || record || retention_days || record_mode
                     || coalesce(motion, 'file') FROM cameras"
            ),
            "Doorrtsp://u:p@10.0.0.5/s4.009autofile",
            "{at}: the camera, V5's record mode defaulted, V10's motion NULL (the file's)"
        );
        assert_eq!(
            one::<String>(&c, "SELECT path || size_bytes FROM recordings"),
            "door/a.mp41234",
            "{at}"
        );
        assert_eq!(
            one::<String>(
                &c,
                "SELECT group_concat(id || type || payload, ',') FROM (SELECT * FROM events ORDER BY id)"
            ),
            r#"1person_entered{"zone":"a"},2count_changed{"count":1}"#,
            "{at}"
        );
        let outbox = if version >= 3 { "2/5" } else { "/0" };
        assert_eq!(
            one::<String>(
                &c,
                "SELECT coalesce(last_sent_id, '') || '/' || dropped FROM mqtt_outbox"
            ),
            outbox,
            "{at}: V3's outbox kept, or created empty"
        );
        assert!(
            opennvr_edge::nvr::store::db::check(&c).unwrap().is_empty(),
            "{at}"
        );

        // The upgraded file follows today's rules: the events key has the type
        // (V4), and ids are never reused (the deleted id 3 stays spent).
        let left = NewEvent {
            camera_id: "door".into(),
            kind: "person_left".into(),
            track_id: Some(7),
            started_at: Some(T0_MS - 86_400_000),
            ..NewEvent::default()
        };
        let (ev, created) = store.insert_event(left).await.unwrap();
        assert!(created, "{at}: person_left beside person_entered");
        assert_eq!(ev.id, 4, "{at}: no id reused");

        // V8: a removed user's id is never handed out again, and a user's
        // API tokens still go with them.
        c.execute_batch(
            "PRAGMA foreign_keys = ON;
             INSERT INTO users (username, password_hash, role, created_at, updated_at)
                 VALUES ('mallory', 'h', 'viewer', 0, 0);
             DELETE FROM users WHERE username = 'mallory';
             INSERT INTO users (username, password_hash, role, created_at, updated_at)
                 VALUES ('carol', 'h', 'admin', 0, 0);
             DELETE FROM users WHERE id = 1;",
        )
        .unwrap();
        assert_eq!(
            one::<i64>(&c, "SELECT id FROM users WHERE username = 'carol'"),
            3,
            "{at}: mallory's id 2 stays spent"
        );
        assert_eq!(one::<i64>(&c, "SELECT count(*) FROM api_tokens"), 0, "{at}");
    }
}
