//! `/api/v1/users` (admin only): listing without secrets, adding, role
//! changes (API tokens revoked, JWTs take the new role at once) and password
//! resets and removals that end every credential at its next use, the last-admin rule, the user cap, and bad input refused with
//! nothing changed. In-process on port 8000's router.

use axum::http::Method;
use serde_json::{json, Value};

use opennvr_edge::nvr::store::Role;

use crate::harness::{request, App, Nvr, Resp};

async fn users(h: &Nvr, token: &str) -> Value {
    let r = h.get("/api/v1/users", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn add(h: &Nvr, token: &str, body: &Value) -> Resp {
    h.post_json("/api/v1/users", Some(token), body).await
}

async fn patch(h: &Nvr, token: &str, id: i64, body: &Value) -> Resp {
    h.json(
        Method::PATCH,
        &format!("/api/v1/users/{id}"),
        Some(token),
        body,
    )
    .await
}

/// POST /api/v1/auth/login-json; the status and the answer.
async fn try_login(h: &Nvr, name: &str, password: &str) -> Resp {
    h.post_json(
        "/api/v1/auth/login-json",
        None,
        &json!({"username": name, "password": password}),
    )
    .await
}

async fn refresh_status(h: &Nvr, refresh_token: &str) -> u16 {
    h.post_json(
        "/api/v1/auth/refresh",
        None,
        &json!({"refresh_token": refresh_token}),
    )
    .await
    .status
}

/// The user named `name` in a `{users, total}` list.
fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
}

#[tokio::test]
async fn admins_add_change_and_remove_users_and_changes_end_their_tokens() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;

    // Only admins: no token 401, a viewer 403 on every route.
    let viewer = h.viewer_token("vic").await;
    assert_eq!(h.get("/api/v1/users", None).await.status, 401);
    assert_eq!(h.get("/api/v1/users", Some(&viewer)).await.status, 403);
    let r = add(
        &h,
        &viewer,
        &json!({"username": "eve", "password": "long enough"}),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    assert_eq!(
        patch(&h, &viewer, 1, &json!({"role": "viewer"}))
            .await
            .status,
        403
    );
    assert_eq!(h.delete("/api/v1/users/1", &viewer).await.status, 403);

    // The list: upstream's shape, no secrets.
    let list = users(&h, &admin).await;
    assert_eq!(list["total"], 2);
    let a = named(&list, "admin").unwrap();
    assert_eq!(
        (
            a["role"].as_str(),
            a["role_id"].as_i64(),
            a["is_superuser"].as_bool()
        ),
        (Some("admin"), Some(1), Some(true))
    );
    let text = h.get("/api/v1/users/", Some(&admin)).await.text();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );

    // Add a viewer (the default role); it can log in, and is listed.
    let r = add(
        &h,
        &admin,
        &json!({"username": "ann.b@site", "password": "first password"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let ann = r.json();
    assert_eq!(ann["role"], "viewer");
    assert!(!r.text().contains("password"), "{}", r.text());
    let id = ann["id"].as_i64().unwrap();
    let pair = try_login(&h, "ann.b@site", "first password").await.json();
    let ann_token = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/api/v1/users", Some(&ann_token)).await.status, 403);
    let got = h.get(&format!("/api/v1/users/{id}"), Some(&admin)).await;
    assert_eq!(got.json()["username"], "ann.b@site");
    assert_eq!(users(&h, &admin).await["total"], 3);

    // Promote (upstream's role_id): her tokens carry the new role from the
    // next request on, the refresh token too; she may list, and (signed in)
    // mint an admin API token.
    let r = patch(&h, &admin, id, &json!({"role_id": 1})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["role"], "admin");
    assert_eq!(h.get("/api/v1/users", Some(&ann_token)).await.status, 200);
    assert_eq!(
        refresh_status(&h, pair["refresh_token"].as_str().unwrap()).await,
        200
    );
    let promoted = h.login("ann.b@site", "first password").await;
    assert_eq!(h.get("/api/v1/users", Some(&promoted)).await.status, 200);
    let (api, _) = h
        .api_token(&promoted, &json!({"name": "ci", "role": "admin"}))
        .await;
    assert_eq!(h.get("/api/v1/users", Some(&api)).await.status, 200);
    // An admin API token reads users but neither adds one nor sets a
    // password or a role: a login made with it would outlive it.
    let r = add(
        &h,
        &api,
        &json!({"username": "tok", "password": "long enough"}),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    for body in [
        json!({"password": "token-set password"}),
        json!({"role": "viewer"}),
    ] {
        let r = patch(&h, &api, id, &body).await;
        assert_eq!((r.status, r.code().as_str()), (403, "forbidden"), "{body}");
    }
    assert_eq!(
        try_login(&h, "ann.b@site", "token-set password")
            .await
            .status,
        401
    );

    // Demote her: the admin API token she minted dies with the role.
    let r = patch(&h, &admin, id, &json!({"role": "viewer"})).await;
    assert_eq!(r.json()["role_id"], 2);
    assert_eq!(h.get("/api/v1/users", Some(&api)).await.status, 401);

    // Promote again (the same role twice changes nothing) and mint another.
    for _ in 0..2 {
        let r = patch(&h, &admin, id, &json!({"role": "admin"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let pair = try_login(&h, "ann.b@site", "first password").await.json();
    let promoted = pair["access_token"].as_str().unwrap().to_owned();
    let (api, _) = h
        .api_token(&promoted, &json!({"name": "ci2", "role": "viewer"}))
        .await;
    assert_eq!(h.get("/api/v1/cameras", Some(&api)).await.status, 200);

    // Reset her password over PUT (upstream's verb): the old one fails, the
    // new one works, her refresh and API tokens are ended.
    let r = h
        .json(
            Method::PUT,
            &format!("/api/v1/users/{id}"),
            Some(&admin),
            &json!({"password": "second password"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        try_login(&h, "ann.b@site", "first password").await.status,
        401
    );
    assert_eq!(
        try_login(&h, "ann.b@site", "second password").await.status,
        200
    );
    assert_eq!(
        refresh_status(&h, pair["refresh_token"].as_str().unwrap()).await,
        401
    );
    assert_eq!(h.get("/api/v1/cameras", Some(&api)).await.status, 401);

    // Remove her: 200 with upstream's message, she cannot log in, 404 after.
    let r = h.delete(&format!("/api/v1/users/{id}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["message"].is_string());
    assert_eq!(
        try_login(&h, "ann.b@site", "second password").await.status,
        401
    );
    let r = h.get(&format!("/api/v1/users/{id}"), Some(&admin)).await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    assert_eq!(
        h.delete(&format!("/api/v1/users/{id}"), &admin)
            .await
            .status,
        404
    );
    assert_eq!(users(&h, &admin).await["total"], 2);

    // /users/me answers anyone who is signed in, as /auth/me does.
    let me = h.get("/api/v1/users/me", Some(&viewer)).await.json();
    assert_eq!(
        (me["username"].as_str(), me["role_id"].as_i64()),
        (Some("vic"), Some(2))
    );
}

#[tokio::test]
async fn the_last_admin_stays_and_nobody_deletes_themselves() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let me = h.get("/api/v1/auth/me", Some(&admin)).await.json();
    let admin_id = me["id"].as_i64().unwrap();

    // Alone: neither demoted nor deleted (by self), and nothing changes.
    let r = patch(&h, &admin, admin_id, &json!({"role": "viewer"})).await;
    assert_eq!((r.status, r.code().as_str()), (409, "conflict"));
    assert!(r.text().contains("last admin"), "{}", r.text());
    let r = h.delete(&format!("/api/v1/users/{admin_id}"), &admin).await;
    assert_eq!((r.status, r.code().as_str()), (400, "bad_request"));
    // A demotion refused in the same request as a password reset rolls the reset back.
    let r = patch(
        &h,
        &admin,
        admin_id,
        &json!({"role": "viewer", "password": "a new password"}),
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(try_login(&h, "admin", "a new password").await.status, 401);
    assert_eq!(
        try_login(&h, "admin", &h.admin_password()).await.status,
        200
    );

    // With a second admin, the first may be demoted.
    let r = add(
        &h,
        &admin,
        &json!({"username": "bob", "password": "bob password", "role": "admin"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let bob_id = r.json()["id"].as_i64().unwrap();
    let r = patch(&h, &admin, admin_id, &json!({"role": "viewer"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The demoted admin's token is a viewer's at once; bob, the last admin
    // now, cannot demote himself.
    let r = h.delete(&format!("/api/v1/users/{bob_id}"), &admin).await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    let bob = h.login("bob", "bob password").await;
    let r = patch(&h, &bob, bob_id, &json!({"role": "viewer"})).await;
    assert_eq!((r.status, r.code().as_str()), (409, "conflict"));
    let list = users(&h, &bob).await;
    assert_eq!(named(&list, "bob").unwrap()["role"], "admin");
    assert_eq!(named(&list, "admin").unwrap()["role"], "viewer");
}

#[tokio::test]
async fn bad_input_and_the_user_cap_are_refused_and_change_nothing() {
    let h = Nvr::start_with(&[("OPENNVR_MAX_USERS", "3")]).await;
    let admin = h.admin_token().await;
    let before = users(&h, &admin).await;

    let long_name = "n".repeat(65);
    let long_pw = "p".repeat(1025);
    let cases = [
        json!({"username": "a b", "password": "long enough"}),
        json!({"username": "<script>", "password": "long enough"}),
        json!({"username": "", "password": "long enough"}),
        json!({"username": long_name, "password": "long enough"}),
        json!({"username": "carl", "password": "short"}),
        json!({"username": "carl", "password": long_pw}),
        json!({"username": "carl", "password": "long enough", "role": "root"}),
        json!({"username": "carl", "password": "long enough", "role_id": 3}),
        json!({"username": "carl", "password": "long enough", "role": "admin", "role_id": 2}),
        json!({"username": "carl", "password": "long enough", "is_root": true}),
        json!({"username": "carl"}),
        json!(["carl"]),
    ];
    for body in &cases {
        let r = add(&h, &admin, body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.code(), "bad_request", "{body}");
    }
    let r = h
        .post_raw("/api/v1/users", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(r.status, 401, "no token, no parsing: {}", r.text());
    // Taken name: 409.
    let r = add(
        &h,
        &admin,
        &json!({"username": "admin", "password": "long enough"}),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (409, "conflict"));

    let me = h.get("/api/v1/auth/me", Some(&admin)).await.json();
    let id = me["id"].as_i64().unwrap();
    for body in [
        json!({}),
        json!({"password": "short"}),
        json!({"role": "owner"}),
        json!({"username": "renamed"}),
    ] {
        let r = patch(&h, &admin, id, &body).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "bad_request"),
            "{body}"
        );
    }
    assert_eq!(
        patch(&h, &admin, 9999, &json!({"role": "viewer"}))
            .await
            .status,
        404
    );
    assert_eq!(h.get("/api/v1/users/x", Some(&admin)).await.status, 400);
    assert_eq!(h.delete("/api/v1/users/9999", &admin).await.status, 404);
    assert_eq!(users(&h, &admin).await, before, "nothing changed");
    // The admin's password still works (no reset slipped through).
    assert_eq!(
        try_login(&h, "admin", &h.admin_password()).await.status,
        200
    );

    // The cap: 3 users in all.
    for name in ["u1", "u2"] {
        let r = add(
            &h,
            &admin,
            &json!({"username": name, "password": "long enough"}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = add(
        &h,
        &admin,
        &json!({"username": "u3", "password": "long enough"}),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (409, "conflict"));
    assert!(r.text().contains("max_users"), "{}", r.text());
    assert_eq!(users(&h, &admin).await["total"], 3);
}

/// A role change, a password reset or a removal counts at the very next
/// request of the credentials the user already holds (no re-login, no
/// waiting for expiry); other users' tokens are untouched.
#[tokio::test]
async fn a_changed_role_a_reset_or_a_removal_counts_at_the_next_request() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    h.add_user("boss", Role::Admin, "boss password").await;
    let pair = h.login_pair("boss", "boss password").await;
    let boss = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let vic = h.viewer_token("vic").await;
    let id = named(&users(&h, &boss).await, "boss").unwrap()["id"]
        .as_i64()
        .unwrap();

    // Demoted: the same access token is a viewer's at once (403, not 401).
    let r = patch(&h, &admin, id, &json!({"role": "viewer"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h.get("/api/v1/users", Some(&boss)).await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    let me = h.get("/api/v1/auth/me", Some(&boss)).await.json();
    assert_eq!(
        (me["role"].as_str(), me["is_superuser"].as_bool()),
        (Some("viewer"), Some(false))
    );
    assert_eq!(h.get("/api/v1/cameras", Some(&boss)).await.status, 200);
    // Its refresh token mints a viewer's pair, not an admin's.
    let r = h
        .post_json(
            "/api/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let minted = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/api/v1/users", Some(&minted)).await.status, 403);

    // A password reset refuses the old access and refresh tokens at once.
    let r = patch(&h, &admin, id, &json!({"password": "boss password 2"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for old in [&boss, &minted] {
        let r = h.get("/api/v1/auth/me", Some(old)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "invalid_token"),
            "{}",
            r.text()
        );
    }
    assert_eq!(refresh_status(&h, &refresh).await, 401);

    // Removed: a fresh token is refused, a ticket bought before opens
    // nothing, and a stream open at the time ends at its next re-check.
    let fresh = h.login("boss", "boss password 2").await;
    let tk = h
        .post_json("/api/v1/events/ticket", Some(&fresh), &json!({}))
        .await
        .json()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let rb = request(Method::GET, "/api/v1/events/stream")
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {fresh}"));
    let mut open = h.open(rb.body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(open.status, 200);
    h.clock.sleeping(1).await;
    assert_eq!(
        h.delete(&format!("/api/v1/users/{id}"), &admin)
            .await
            .status,
        200
    );
    assert_eq!(h.get("/api/v1/auth/me", Some(&fresh)).await.status, 401);
    let by_ticket = h
        .get(&format!("/api/v1/events/stream?ticket={tk}"), None)
        .await;
    assert_eq!(by_ticket.status, 401, "{}", by_ticket.text());
    h.advance_s(h.cfg.nvr.stream_recheck_s as i64);
    let end = open.next().await.expect("the stream says why it ends");
    assert_eq!(end.event.as_deref(), Some("closed"));
    assert!(end.data.contains("token revoked"), "{}", end.data);

    // Nobody else was touched.
    assert_eq!(h.get("/api/v1/users", Some(&admin)).await.status, 200);
    let me = h.get("/api/v1/auth/me", Some(&vic)).await;
    assert_eq!(
        (me.status, me.json()["role"].as_str()),
        (200, Some("viewer"))
    );
}
