//! Port 8000 as upstream OpenNVR's clients call it: the camera-agent SDK
//! decides a user's tier from `/auth/me` (`is_superuser`, else `role_name`)
//! and logs out; FastAPI clients add trailing slashes to collections; the
//! web UI filters events by `from`/`to`. (Its `/events/ws` stream needs a
//! real socket: `tests/daemon/compat/nvr.rs`.)

use serde_json::{json, Value};

use crate::harness::{App, Nvr};

/// Every request carries `Authorization: Bearer <token>`, "" included, as
/// the process-level client sent it.
async fn get(d: &Nvr, token: &str, path: &str) -> (u16, Value) {
    let r = d.get(path, Some(token)).await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

async fn post(d: &Nvr, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = d.post_json(path, Some(token), body).await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// The camera-agent's rule: superusers and `role_name` "admin" are admins,
/// "operator" operators, anyone else a viewer.
fn agent_tier(me: &Value) -> &'static str {
    if me["is_superuser"] == true {
        return "admin";
    }
    match me["role_name"]
        .as_str()
        .unwrap_or("")
        .to_lowercase()
        .as_str()
    {
        "admin" => "admin",
        "operator" => "operator",
        _ => "viewer",
    }
}

async fn login_pair(d: &Nvr, user: &str, password: &str) -> (String, String) {
    let (s, v) = post(
        d,
        "",
        "/api/v1/auth/login-json",
        &json!({"username": user, "password": password}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// The status of a refresh with `refresh`.
async fn refresh_status(d: &Nvr, refresh: &str) -> u16 {
    let body = json!({"refresh_token": refresh});
    post(d, "", "/api/v1/auth/refresh", &body).await.0
}

#[tokio::test]
async fn auth_me_tiers_and_logout() {
    let d = Nvr::start().await;
    let (access, refresh) = login_pair(&d, "admin", &d.admin_password()).await;
    let viewer = d.viewer_token("v").await;

    let (s, me) = get(&d, &access, "/api/v1/auth/me").await;
    assert_eq!(s, 200);
    assert_eq!(agent_tier(&me), "admin", "{me}");
    assert_eq!(
        (me["role_name"].as_str(), me["role_id"].as_i64()),
        (Some("admin"), Some(1))
    );
    assert_eq!(
        (me["mfa_enabled"].as_bool(), me["email"].is_null()),
        (Some(false), true)
    );
    let (_, vme) = get(&d, &viewer, "/api/v1/auth/me").await;
    assert_eq!(agent_tier(&vme), "viewer", "{vme}");
    assert_eq!(
        (vme["is_superuser"].as_bool(), vme["role_id"].as_i64()),
        (Some(false), Some(2))
    );

    // Logout with a JWT: the user's access and refresh tokens stop working
    // at once (sign-out everywhere); other users' stand.
    let (s, out) = post(&d, &access, "/api/v1/auth/logout", &json!({})).await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["revoked"], "sessions");
    let s = refresh_status(&d, &refresh).await;
    assert_eq!(s, 401, "a refresh token outlived logout");
    assert_eq!(get(&d, &access, "/api/v1/auth/me").await.0, 401);
    assert_eq!(get(&d, &viewer, "/api/v1/auth/me").await.0, 200);
    // A new login gets a working pair.
    let (fresh, refresh) = login_pair(&d, "admin", &d.admin_password()).await;
    let s = refresh_status(&d, &refresh).await;
    assert_eq!(s, 200);

    // Logout with an API token revokes that token.
    let (s, tok) = post(
        &d,
        &fresh,
        "/api/v1/tokens/",
        &json!({"name": "agent", "role": "viewer"}),
    )
    .await;
    assert_eq!(s, 201, "{tok}");
    let api = tok["token"].as_str().unwrap().to_owned();
    assert_eq!(
        agent_tier(&get(&d, &api, "/api/v1/auth/me").await.1),
        "viewer"
    );
    let (s, out) = post(&d, &api, "/api/v1/auth/logout", &json!({})).await;
    assert_eq!((s, out["revoked"].as_str()), (200, Some("api_token")));
    assert_eq!(get(&d, &api, "/api/v1/auth/me").await.0, 401);
    // Without a credential there is nothing to log out of.
    assert_eq!(post(&d, "", "/api/v1/auth/logout", &json!({})).await.0, 401);
}

#[tokio::test]
async fn from_to_filters_and_trailing_slashes() {
    let d = Nvr::start().await;
    let t = d.admin_token().await;
    // 1_700_000_000 s is 2023-11-14T22:13:20Z; the three are 100 s apart.
    let mut ids = Vec::new();
    for i in 0..3i64 {
        let (s, ev) = post(
            &d,
            &t,
            "/api/v1/events/",
            &json!({"camera_id": "cam", "type": "door_opened", "started_at": 1_700_000_000_000i64 + i * 100_000}),
        )
        .await;
        assert_eq!(s, 201, "{ev}");
        ids.push(ev["id"].as_i64().unwrap());
    }
    let found = async |q: &str| -> Vec<i64> {
        let (s, v) = get(&d, &t, &format!("/api/v1/events/?order=asc&{q}")).await;
        assert_eq!(s, 200, "{q}: {v}");
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    // ISO 8601 and epoch seconds; `to` is inclusive.
    assert_eq!(
        found("from=2023-11-14T22:15:00Z&to=1700000100").await,
        [ids[1]]
    );
    // Epoch milliseconds, and an offset whose `+` the query string made a space.
    assert_eq!(found("from=1700000100000").await, &ids[1..]);
    assert_eq!(found("to=2023-11-14T23:15:00+01:00").await, &ids[..2]);
    assert_eq!(found("from=2023-11-14T22:16:40").await, [ids[2]]);
    // Ours still work beside them.
    assert_eq!(
        found("after=1700000100000&before=1700000200000").await,
        [ids[1]]
    );
    for bad in [
        "from=yesterday",
        "from=1&after=1",
        "to=2023-13-40T00:00:00Z",
    ] {
        let (s, v) = get(&d, &t, &format!("/api/v1/events?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["detail"], v["error"]["message"]);
    }
    for path in [
        "/api/v1/cameras/",
        "/api/v1/tokens/",
        "/api/v1/recordings/cam/?start_unix=0&end_unix=1",
    ] {
        assert_eq!(get(&d, &t, path).await.0, 200, "{path}");
    }
}
