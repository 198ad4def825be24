//! Login, JWT validation and expiry, roles, API tokens and the login rate
//! limit, in-process on port 8000's router; time is moved, never waited for.

use axum::body::Body;
use axum::http::Method;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::harness::{request, App, Nvr, T0_MS};

async fn me(h: &Nvr, token: &str) -> crate::harness::Resp {
    h.get("/api/v1/auth/me", Some(token)).await
}

/// POST /api/v1/auth/refresh with `token` as the refresh token.
async fn refresh(h: &Nvr, token: &str) -> crate::harness::Resp {
    h.post_json(
        "/api/v1/auth/refresh",
        None,
        &json!({"refresh_token": token}),
    )
    .await
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn sign(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn login_me_refresh_and_bad_tokens() {
    let h = Nvr::start().await;
    // Health is open; everything else is not.
    assert_eq!(h.get("/health", None).await.status, 200);
    for path in [
        "/api/v1/auth/me",
        "/api/v1/cameras",
        "/api/v1/events",
        "/api/v1/tokens",
    ] {
        let r = h.get(path, None).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.header("www-authenticate"), "Bearer");
        assert_eq!(r.code(), "unauthorized");
    }
    assert_eq!(h.get("/nope", None).await.status, 404);

    // The secret exists, with 0600, and the admin password file too.
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["jwt-secret", "initial-admin-password"] {
            let m = std::fs::metadata(h.data_dir().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600, "{f}");
        }
    }
    let pw = h.admin_password();

    // Form login (OAuth2 password grant) and JSON login.
    let form = format!("username=admin&password={pw}&grant_type=password");
    let r = h
        .send(
            request(Method::POST, "/api/v1/auth/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let pair = r.json();
    assert_eq!(pair["token_type"], "bearer");
    assert!(pair["expires_in"].as_i64().unwrap() > 0);
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh_token = pair["refresh_token"].as_str().unwrap().to_owned();
    let who = me(&h, &access).await.json();
    assert_eq!(who["username"], "admin");
    assert_eq!(who["role"], "admin");

    // Wrong password, unknown user: 401, same code.
    for (u, p) in [("admin", "wrong-password"), ("nobody", "whatever-pass")] {
        let r = h
            .post_json(
                "/api/v1/auth/login-json",
                None,
                &json!({"username": u, "password": p}),
            )
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.code(), "bad_credentials");
    }
    // Malformed login bodies are 4xx, not 500.
    let r = h
        .post_raw(
            "/api/v1/auth/login-json",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);

    // Refresh: the refresh token mints a pair; an access token cannot refresh,
    // and a refresh token cannot authorise a request.
    assert_eq!(refresh(&h, &refresh_token).await.status, 200);
    assert_eq!(refresh(&h, &access).await.status, 401);
    assert_eq!(me(&h, &refresh_token).await.status, 401);

    // Expired, tampered, alg none, wrongly signed.
    let secret = std::fs::read_to_string(h.data_dir().join("jwt-secret")).unwrap();
    let secret = secret.trim().as_bytes();
    let now = T0_MS / 1000;
    // A user's token version starts at a random value: take the real one.
    let ver = {
        let body = access.split('.').nth(1).unwrap();
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["ver"].clone()
    };
    let claims = |exp: i64| {
        json!({"sub": "admin", "uid": 1, "role": "admin", "typ": "access", "ver": ver,
               "iat": now - 100, "exp": exp})
    };
    // Our own forgery with the real secret works: the checks below are meaningful.
    assert_eq!(me(&h, &sign(secret, &claims(now + 600))).await.status, 200);
    let r = me(&h, &sign(secret, &claims(now - 10))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "token_expired");
    let other = sign(b"some-other-secret-of-enough-length", &claims(now + 600));
    assert_eq!(me(&h, &other).await.status, 401);
    let parts: Vec<&str> = access.split('.').collect();
    let payload = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&payload.replace("\"admin\"", "\"root\"")),
        parts[2]
    );
    assert_eq!(me(&h, &tampered).await.status, 401);
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    assert_eq!(me(&h, &none).await.status, 401);
    assert_eq!(me(&h, "not-a-token").await.status, 401);
    let r = h
        .send(
            request(Method::GET, "/api/v1/auth/me")
                .header("authorization", format!("Basic {}", b64("admin:x")))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 401);
}

/// Tokens expire on the daemon's clock: moved past the TTL, not waited for.
#[tokio::test]
async fn access_and_refresh_tokens_expire_when_their_time_has_passed() {
    let h = Nvr::start_with(&[("OPENNVR_ACCESS_TOKEN_TTL_S", "60")]).await;
    let pair = h.login_pair("admin", &h.admin_password()).await;
    assert_eq!(pair["expires_in"], 60);
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh_token = pair["refresh_token"].as_str().unwrap().to_owned();
    h.advance_s(59);
    assert_eq!(me(&h, &access).await.status, 200, "still inside its TTL");
    h.advance_s(2);
    let r = me(&h, &access).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "token_expired");
    // The refresh token lives longer (7 days by default) and mints a fresh pair.
    let r = refresh(&h, &refresh_token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let fresh = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&h, &fresh).await.status, 200);
    h.advance_s(7 * 24 * 3600);
    let r = refresh(&h, &refresh_token).await;
    assert_eq!(r.status, 401, "a refresh token past its TTL");
}

#[tokio::test]
async fn viewers_read_admins_write() {
    let h = Nvr::start().await;
    let viewer = h.viewer_token("vera").await;
    assert_eq!(me(&h, &viewer).await.json()["role"], "viewer");
    assert_eq!(h.get("/api/v1/cameras", Some(&viewer)).await.status, 200);
    let writes = [
        (
            "/api/v1/cameras",
            json!({"id": "c1", "source_url": "rtsp://h/1"}),
        ),
        (
            "/api/v1/events",
            json!({"camera_id": "c1", "type": "person_entered"}),
        ),
        ("/api/v1/tokens", json!({"name": "x"})),
    ];
    for (path, body) in &writes {
        let r = h.post_json(path, Some(&viewer), body).await;
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.code(), "forbidden");
    }
    assert_eq!(h.delete("/api/v1/cameras/c1", &viewer).await.status, 403);
}

#[tokio::test]
async fn api_tokens_work_until_revoked() {
    let h = Nvr::start().await;
    let admin = h.admin_token().await;
    let (token, id) = h
        .api_token(&admin, &json!({"name": "frigate", "role": "admin"}))
        .await;
    assert!(token.starts_with("onvr_"));
    // Usable for reads and (admin role) writes.
    assert_eq!(me(&h, &token).await.json()["auth"], "api_token");
    let r = h
        .post_json(
            "/api/v1/events",
            Some(&token),
            &json!({"camera_id": "cam", "type": "external"}),
        )
        .await;
    assert_eq!(r.status, 201);
    // Listed without the secret.
    let list = h.get("/api/v1/tokens", Some(&admin)).await.text();
    assert!(list.contains("frigate") && !list.contains(&token));
    // Only the hash is stored.
    let db = std::fs::read(h.data_dir().join("opennvr.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
    // Revoke: refused at once.
    let r = h.delete(&format!("/api/v1/tokens/{id}"), &admin).await;
    assert_eq!(r.status, 204);
    assert_eq!(me(&h, &token).await.status, 401);
    assert_eq!(me(&h, "onvr_0000").await.status, 401);
    assert_eq!(h.delete("/api/v1/tokens/999", &admin).await.status, 404);
}

#[tokio::test]
async fn failed_logins_are_rate_limited_until_the_window_passes() {
    let h = Nvr::start_with(&[
        ("OPENNVR_LOGIN_FAILURES_PER_USER", "3"),
        ("OPENNVR_LOGIN_FAILURES_PER_IP", "6"),
        ("OPENNVR_LOGIN_WINDOW_S", "300"),
    ])
    .await;
    let pw = h.admin_password();
    let login = |u: String, p: String, ip: [u8; 4]| {
        let h = &h;
        async move {
            let body = json!({"username": u, "password": p});
            h.send_from(
                ip,
                request(Method::POST, "/api/v1/auth/login-json")
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
        }
    };
    let here = [192, 168, 1, 10];
    for _ in 0..3 {
        let r = login("admin".into(), "wrong-password".into(), here).await;
        assert_eq!(r.status, 401);
    }
    // Even the right password is refused now, with a Retry-After: the whole
    // window, since all three failures happened at this instant.
    let r = login("admin".into(), pw.clone(), here).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), "300");
    assert_eq!(r.code(), "rate_limited");
    // Per IP: other usernames from the same address run out too; another
    // address is not held to this one's count.
    for i in 0..3 {
        let r = login(format!("u{i}"), "wrong-password".into(), here).await;
        assert_eq!(r.status, 401);
    }
    let r = login("u9".into(), "wrong-password".into(), here).await;
    assert_eq!(r.status, 429);
    let r = login("u9".into(), "wrong-password".into(), [192, 168, 1, 11]).await;
    assert_eq!(r.status, 401, "another client address has its own count");
    // One second before the window ends: still refused, and told so.
    h.advance_s(299);
    let r = login("admin".into(), pw.clone(), here).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), "1");
    // Once it has passed, the right password works again.
    h.advance_s(1);
    assert_eq!(login("admin".into(), pw, here).await.status, 200);
}
