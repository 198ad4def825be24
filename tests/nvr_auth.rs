//! Login, JWT validation, roles, API tokens and the login rate limit, over
//! real HTTP against the real binary.

mod common;

use base64::Engine as _;
use common::{client, error_code, Daemon};
use serde_json::{json, Value};

fn me(d: &Daemon, token: &str) -> reqwest::blocking::Response {
    client()
        .get(d.nvr_url("/api/v1/auth/me"))
        .bearer_auth(token)
        .send()
        .unwrap()
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

#[test]
fn login_me_refresh_and_bad_tokens() {
    let d = common::start_nvr(&[]);
    // Health is open; everything else is not.
    assert_eq!(
        client().get(d.nvr_url("/health")).send().unwrap().status(),
        200
    );
    for path in [
        "/api/v1/auth/me",
        "/api/v1/cameras",
        "/api/v1/events",
        "/api/v1/tokens",
    ] {
        let r = client().get(d.nvr_url(path)).send().unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert_eq!(error_code(r), "unauthorized");
    }
    let r = client().get(d.nvr_url("/nope")).send().unwrap();
    assert_eq!(r.status(), 404);

    // The secret exists, with 0600, and the admin password file too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["jwt-secret", "initial-admin-password"] {
            let m = std::fs::metadata(d.data_dir.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600, "{f}");
        }
    }
    let pw = d.admin_password();

    // Form login (OAuth2 password grant) and JSON login.
    let r = client()
        .post(d.nvr_url("/api/v1/auth/login"))
        .form(&[
            ("username", "admin"),
            ("password", pw.as_str()),
            ("grant_type", "password"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let pair: Value = r.json().unwrap();
    assert_eq!(pair["token_type"], "bearer");
    assert!(pair["expires_in"].as_i64().unwrap() > 0);
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let who: Value = me(&d, &access).json().unwrap();
    assert_eq!(who["username"], "admin");
    assert_eq!(who["role"], "admin");

    // Wrong password, unknown user: 401, same code.
    for (u, p) in [("admin", "wrong-password"), ("nobody", "whatever-pass")] {
        let r = client()
            .post(d.nvr_url("/api/v1/auth/login-json"))
            .json(&json!({"username": u, "password": p}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(error_code(r), "bad_credentials");
    }
    // Malformed login bodies are 4xx, not 500.
    let r = client()
        .post(d.nvr_url("/api/v1/auth/login-json"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);

    // Refresh: the refresh token mints a pair; an access token cannot refresh,
    // and a refresh token cannot authorise a request.
    let r = client()
        .post(d.nvr_url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(d.nvr_url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": access}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(me(&d, &refresh).status(), 401);

    // Expired, tampered, alg none, wrongly signed.
    let secret = std::fs::read_to_string(d.data_dir.join("jwt-secret")).unwrap();
    let secret = secret.trim().as_bytes();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |exp: i64| {
        json!({"sub": "admin", "uid": 1, "role": "admin", "typ": "access", "ver": 0,
               "iat": now - 100, "exp": exp})
    };
    // Our own forgery with the real secret works: the checks below are meaningful.
    assert_eq!(me(&d, &sign(secret, &claims(now + 600))).status(), 200);
    let expired = sign(secret, &claims(now - 10));
    let r = me(&d, &expired);
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r), "token_expired");
    assert_eq!(
        me(
            &d,
            &sign(b"some-other-secret-of-enough-length", &claims(now + 600))
        )
        .status(),
        401
    );
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
    assert_eq!(me(&d, &tampered).status(), 401);
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    assert_eq!(me(&d, &none).status(), 401);
    assert_eq!(me(&d, "not-a-token").status(), 401);
    let r = client()
        .get(d.nvr_url("/api/v1/auth/me"))
        .header("authorization", format!("Basic {}", b64("admin:x")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn viewers_read_admins_write_and_passwd_revokes_refresh() {
    let d = common::start_nvr(&[]);
    let viewer = d.viewer_token("vera");
    let who: Value = me(&d, &viewer).json().unwrap();
    assert_eq!(who["role"], "viewer");
    let r = client()
        .get(d.nvr_url("/api/v1/cameras"))
        .bearer_auth(&viewer)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let writes = [
        (
            "POST",
            "/api/v1/cameras",
            json!({"id": "c1", "source_url": "rtsp://h/1"}),
        ),
        (
            "POST",
            "/api/v1/events",
            json!({"camera_id": "c1", "type": "person_entered"}),
        ),
        ("POST", "/api/v1/tokens", json!({"name": "x"})),
    ];
    for (m, path, body) in &writes {
        let r = client()
            .request(m.parse().unwrap(), d.nvr_url(path))
            .bearer_auth(&viewer)
            .json(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(error_code(r), "forbidden");
    }
    let r = client()
        .delete(d.nvr_url("/api/v1/cameras/c1"))
        .bearer_auth(&viewer)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);

    // user list / passwd through the CLI; passwd revokes refresh tokens.
    let (ok, out, _) = d.cli(&["user", "list"], "");
    assert!(ok);
    assert!(out.contains("admin") && out.contains("vera"), "{out}");
    let r = client()
        .post(d.nvr_url("/api/v1/auth/login-json"))
        .json(&json!({"username": "vera", "password": "viewer-password"}))
        .send()
        .unwrap();
    let refresh = r.json::<Value>().unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, _, err) = d.cli(
        &["user", "passwd", "--username", "vera", "--password-stdin"],
        "new-password-1\n",
    );
    assert!(ok, "{err}");
    let r = client()
        .post(d.nvr_url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    d.login("vera", "new-password-1");
    // Weak passwords and duplicate users are refused by the CLI.
    let (ok, _, _) = d.cli(
        &["user", "add", "--username", "x", "--password-stdin"],
        "short\n",
    );
    assert!(!ok);
    let (ok, _, _) = d.cli(
        &["user", "add", "--username", "vera", "--password-stdin"],
        "long-enough-1\n",
    );
    assert!(!ok);
}

#[test]
fn api_tokens_work_until_revoked() {
    let d = common::start_nvr(&[]);
    let admin = d.admin_token();
    let r = client()
        .post(d.nvr_url("/api/v1/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"name": "frigate", "role": "admin"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().unwrap();
    let token = v["token"].as_str().unwrap().to_owned();
    let id = v["id"].as_i64().unwrap();
    assert!(token.starts_with("onvr_"));
    // Usable for reads and (admin role) writes.
    let who: Value = me(&d, &token).json().unwrap();
    assert_eq!(who["auth"], "api_token");
    let r = client()
        .post(d.nvr_url("/api/v1/events"))
        .bearer_auth(&token)
        .json(&json!({"camera_id": "cam", "type": "external"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // Listed without the secret.
    let list = client()
        .get(d.nvr_url("/api/v1/tokens"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(list.contains("frigate") && !list.contains(&token));
    // Only the hash is stored.
    let db = std::fs::read(d.data_dir.join("opennvr.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
    // Revoke: refused at once.
    let r = client()
        .delete(d.nvr_url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me(&d, &token).status(), 401);
    assert_eq!(me(&d, "onvr_0000").status(), 401);
    let r = client()
        .delete(d.nvr_url("/api/v1/tokens/999"))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn failed_logins_are_rate_limited() {
    let d = common::start_nvr(&[
        ("OPENNVR_LOGIN_FAILURES_PER_USER", "3"),
        ("OPENNVR_LOGIN_FAILURES_PER_IP", "6"),
    ]);
    let pw = d.admin_password();
    let login = |u: &str, p: &str| {
        client()
            .post(d.nvr_url("/api/v1/auth/login-json"))
            .json(&json!({"username": u, "password": p}))
            .send()
            .unwrap()
    };
    for _ in 0..3 {
        assert_eq!(login("admin", "wrong-password").status(), 401);
    }
    // Even the right password is refused now, with a Retry-After.
    let r = login("admin", &pw);
    assert_eq!(r.status(), 429);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(error_code(r), "rate_limited");
    // Per IP: other usernames from the same address run out too.
    for i in 0..3 {
        assert_eq!(login(&format!("u{i}"), "wrong-password").status(), 401);
    }
    assert_eq!(login("u9", "wrong-password").status(), 429);
}
