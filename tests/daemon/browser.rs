//! The web console in a real headless Chromium (over WebDriver, see
//! `common/webdriver.rs`) against a real daemon running the demo camera:
//! sign in, the live grid's decoded frame, an event with its thumbnail and
//! boxes, recordings that play in `<video>`, an admin adding a camera and a
//! user, a viewer kept out of the admin pages, logout ending the session,
//! and a form without its CSRF token refused. One daemon and one browser
//! session for all of it (each costs seconds on two cores); every page is
//! checked not to scroll sideways and captured at desktop and phone (390 px)
//! widths into `<target>/screenshots/` (described in docs/console.md).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::camera::{chunks, wait_events};
use crate::common::webdriver::Browser;
use crate::common::{client, wait_for, Daemon};

const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);
const MIN: Duration = Duration::from_secs(60);

/// Where the screenshots go: `$CARGO_TARGET_DIR/screenshots`, else
/// `target/screenshots` in the crate (both out of git).
fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("screenshots")
}

/// Captures the page as `<name>-desktop.png` and `<name>-phone.png`, after
/// checking it fits each width, and leaves the viewport at desktop width.
fn shoot(b: &Browser, name: &str) {
    let dir = screenshot_dir();
    assert_fits(b, &format!("{name} at desktop width"));
    b.screenshot(&dir.join(format!("{name}-desktop.png")));
    b.set_viewport(PHONE.0, PHONE.1, true);
    assert_fits(b, &format!("{name} at {} px", PHONE.0));
    b.screenshot(&dir.join(format!("{name}-phone.png")));
    b.set_viewport(DESKTOP.0, DESKTOP.1, false);
}

/// What scrolls sideways on the page as laid out now: the document itself
/// when wider than the window, and any element that scrolls on its own
/// (a table's `.scroll` wrapper), each as `tag#id.class scrollWidth>clientWidth`.
const SIDEWAYS: &str = "const out = [];
    const doc = document.scrollingElement;
    if (doc.scrollWidth > window.innerWidth) out.push(`document ${doc.scrollWidth}>${window.innerWidth}`);
    for (const el of document.body.querySelectorAll('*')) {
        if (['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName)) continue;
        const o = getComputedStyle(el).overflowX;
        if ((o === 'auto' || o === 'scroll') && el.scrollWidth > el.clientWidth) {
            const cls = typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/ +/).join('.') : '';
            out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${cls} ${el.scrollWidth}>${el.clientWidth}`);
        }
    }
    return out;";

/// Panics when the page (`what`) scrolls sideways at the current width.
fn assert_fits(b: &Browser, what: &str) {
    let wide = b.script(SIDEWAYS, vec![]);
    assert_eq!(wide, json!([]), "{what} scrolls sideways");
}

/// Clicks the submit button of `form` and waits for the answer's page to
/// load (the old document is marked, and must be gone).
fn submit(b: &Browser, form: &str) {
    b.script("window.__before_submit = true;", vec![]);
    b.click(&b.find(&format!("{form} [type=submit]")));
    wait_for(MIN, || {
        let v = b.script(
            "return window.__before_submit === undefined && document.readyState === 'complete';",
            vec![],
        );
        (v == json!(true)).then_some(())
    })
    .unwrap_or_else(|| panic!("submitting {form} loaded no new page"));
}

/// Signs in through the login form, as a person would.
fn sign_in(b: &Browser, d: &Daemon, user: &str, password: &str) {
    b.goto(&d.nvr_url("/login"));
    let csrf = b.find("form#login input[name=csrf]");
    assert_eq!(b.attr(&csrf, "type").as_deref(), Some("hidden"));
    assert!(!b.attr(&csrf, "value").unwrap_or_default().is_empty());
    b.type_into(&b.find("form#login input[name=username]"), user);
    b.type_into(&b.find("form#login input[name=password]"), password);
    submit(b, "form#login");
    b.find("form#logout");
    assert!(!b.url().contains("/login"), "still on {}", b.url());
}

/// Waits for `<video>` matching `css` to have data for its current frame
/// (`readyState` >= 2), pressing play when it has a source but waits for a
/// gesture; its `{ready, duration, src, id}` then.
fn video_ready(b: &Browser, css: &str, limit: Duration) -> Value {
    let script = "const v = document.querySelector(arguments[0]);
        if (!v) return null;
        if (v.readyState < 2 && v.currentSrc && v.paused) { v.muted = true; v.play().catch(() => {}); }
        return {ready: v.readyState, duration: v.duration, src: v.currentSrc,
                id: v.getAttribute('data-recording-id'), error: v.error ? v.error.code : null};";
    let mut last = Value::Null;
    wait_for(limit, || {
        last = b.script(script, vec![json!(css)]);
        (last["ready"].as_i64().unwrap_or(0) >= 2).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("{css} on {} never had data: {last}", b.url()))
}

/// Waits for `<img>` matching `css` to be decoded; its natural width. The
/// image is scrolled into view first, as a person would: the console's
/// thumbnails load lazily, and a row below the fold (a busy camera's list
/// is long) is never fetched.
fn image_decoded(b: &Browser, css: &str, limit: Duration) -> i64 {
    let script = "const i = document.querySelector(arguments[0]);
        if (i) i.scrollIntoView({block: 'center'});
        return i && i.complete ? i.naturalWidth : 0;";
    wait_for(limit, || {
        let w = b.script(script, vec![json!(css)]).as_i64().unwrap_or(0);
        (w > 0).then_some(w)
    })
    .unwrap_or_else(|| panic!("{css} on {} never decoded", b.url()))
}

/// GET `path` with the browser's cookies, not following redirects.
fn get_with_cookies(d: &Daemon, cookies: &str, path: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(MIN)
        .build()
        .unwrap()
        .get(d.nvr_url(path))
        .header("cookie", cookies)
        .send()
        .unwrap()
}

/// The `href`s of the `<nav>` links that lead to `/admin/...`.
fn admin_links(b: &Browser) -> Vec<String> {
    let v = b.script(
        "return Array.from(document.querySelectorAll('nav a'))
            .map(a => a.getAttribute('href')).filter(h => h && h.startsWith('/admin'));",
        vec![],
    );
    serde_json::from_value(v).unwrap()
}

fn camera_ids(d: &Daemon, token: &str) -> Vec<String> {
    let v: Value = client()
        .get(d.nvr_url("/api/v1/cameras"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn console_in_chromium_live_events_playback_admin_logout_and_csrf() {
    let d = Daemon::start(&[("OPENNVR_DEMO", "true"), ("OPENNVR_SEGMENT_S", "4")]);
    let b = Browser::start(DESKTOP.0, DESKTOP.1);
    let token = d.admin_token();
    let admin_pw = d.admin_password();
    // A viewer, through the users API.
    let r = client()
        .post(d.nvr_url("/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({"username": "vera", "password": "vera password", "role": "viewer"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    // Signed out, every page leads to the login form.
    b.goto(&d.nvr_url("/"));
    b.wait_find("form#login", MIN, None);
    shoot(&b, "login");
    sign_in(&b, &d, "admin", &admin_pw);

    // Live: camera_0's latest frame, decoded.
    b.goto(&d.nvr_url("/"));
    let fig = "figure.camera[data-camera=\"camera_0\"]";
    let cam = b.find(fig);
    assert!(!b.attr(&cam, "data-state").unwrap_or_default().is_empty());
    b.find(&format!("{fig} span.people-count"));
    let w = image_decoded(&b, &format!("{fig} img.live"), 2 * MIN);
    assert_eq!(w, 768, "the demo clip's width");
    shoot(&b, "live");
    b.goto(&d.nvr_url("/cameras/camera_0"));
    image_decoded(&b, "img#live", MIN);
    shoot(&b, "camera");

    // Events: a person event, its thumbnail decoded, its boxes drawn.
    let e = &wait_events(&d, &token, "camera_0", "person_entered", 1, 2 * MIN)[0];
    let id = e["id"].as_i64().unwrap();
    b.goto(&d.nvr_url("/events"));
    let row = format!("tr.event[data-event-id=\"{id}\"]");
    b.wait_find(&row, MIN, Some(Duration::from_secs(2)));
    image_decoded(&b, &format!("{row} img.thumb"), MIN);
    let boxes = b.find_all(&format!("{row} svg.boxes rect"));
    assert!(
        !boxes.is_empty(),
        "no box drawn over event {id}'s thumbnail"
    );
    shoot(&b, "events");

    // The event: its snapshot large, and the recording at that moment plays
    // (once the chunk holding it is closed).
    b.goto(&d.nvr_url(&format!("/events/{id}")));
    image_decoded(&b, "img#snapshot", MIN);
    b.wait_find("video#playback", MIN, Some(Duration::from_secs(3)));
    let v = video_ready(&b, "video#playback", MIN);
    assert!(v["duration"].as_f64().unwrap_or(0.0) > 0.5, "{v}");
    shoot(&b, "event");

    // Recordings: a click on a chunk plays it, as long as the index says.
    let listed = chunks(&d, &token, "camera_0");
    b.goto(&d.nvr_url("/recordings?camera=camera_0"));
    let link = b.find("a.chunk[data-recording-id]");
    let rid: i64 = b.attr(&link, "data-recording-id").unwrap().parse().unwrap();
    let chunk = listed
        .iter()
        .chain(chunks(&d, &token, "camera_0").iter())
        .find(|c| c["id"] == rid)
        .cloned()
        .unwrap_or_else(|| panic!("chunk {rid} not in the API's index"));
    b.click(&link);
    let v = video_ready(&b, "video#player", MIN);
    let (plays, indexed) = (
        v["duration"].as_f64().unwrap(),
        chunk["duration_s"].as_f64().unwrap(),
    );
    assert!(
        (plays - indexed).abs() <= 0.5,
        "chunk {rid}: plays {plays} s in Chromium, indexed {indexed} s"
    );
    assert_eq!(v["id"], rid.to_string(), "{v}");
    shoot(&b, "recordings");

    // Admin: add a camera through the form; its credentials are masked.
    b.goto(&d.nvr_url("/admin/cameras"));
    let add = |id: &str| {
        b.type_into(&b.find("form#camera-add input[name=id]"), id);
        b.type_into(&b.find("form#camera-add input[name=name]"), "Lobby door");
        b.type_into(
            &b.find("form#camera-add input[name=source_url]"),
            "rtsp://cam:s3cret-pw@127.0.0.1:9/lobby",
        );
        // Disabled: nothing listens at that address.
        let enabled = b.find("form#camera-add input[name=enabled]");
        if b.prop(&enabled, "checked") == json!(true) {
            b.click(&enabled);
        }
    };
    add("lobby");
    submit(&b, "form#camera-add");
    b.goto(&d.nvr_url("/admin/cameras"));
    b.find("tr.camera[data-camera-id=\"lobby\"]");
    let page = b.script("return document.body.innerText;", vec![]);
    assert!(
        !page.as_str().unwrap().contains("s3cret-pw"),
        "credentials shown"
    );
    assert!(camera_ids(&d, &token).contains(&"lobby".to_owned()));
    shoot(&b, "admin-cameras");

    // A form posted without its CSRF token is refused, and adds nothing:
    // in the browser (the hidden field removed) and by a bare request
    // carrying the session cookie.
    b.goto(&d.nvr_url("/admin/cameras"));
    add("porch");
    b.script(
        "document.querySelector('form#camera-add input[name=csrf]').remove();",
        vec![],
    );
    submit(&b, "form#camera-add");
    let cookies = b.cookie_header();
    let r = reqwest::blocking::Client::new()
        .post(d.nvr_url("/admin/cameras"))
        .header("cookie", &cookies)
        .form(&[("id", "porch2"), ("source_url", "rtsp://127.0.0.1:9/x")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 403, "a form without CSRF");
    let ids = camera_ids(&d, &token);
    assert!(!ids.iter().any(|i| i.starts_with("porch")), "{ids:?}");

    // Users: add one through the form; it exists in the store as asked.
    b.goto(&d.nvr_url("/admin/users"));
    b.type_into(&b.find("form#user-add input[name=username]"), "carol");
    b.type_into(
        &b.find("form#user-add input[name=password]"),
        "carol password",
    );
    b.script(
        "document.querySelector('form#user-add [name=role]').value = 'admin';",
        vec![],
    );
    submit(&b, "form#user-add");
    let v: Value = client()
        .get(d.nvr_url("/api/v1/users"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let carol = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol")
        .unwrap_or_else(|| panic!("carol not added through the form: {v}"));
    assert_eq!(carol["role"], "admin");
    b.goto(&d.nvr_url("/admin/users"));
    b.find("tr.user[data-username=\"carol\"][data-role=\"admin\"]");
    shoot(&b, "admin-users");

    // Every other admin page the nav links to.
    let links = admin_links(&b);
    for page in ["/admin/cameras", "/admin/users"] {
        assert!(links.iter().any(|l| l == page), "{page} not in {links:?}");
    }
    for link in links
        .iter()
        .filter(|l| !["/admin/cameras", "/admin/users"].contains(&l.as_str()))
    {
        b.goto(&d.nvr_url(link));
        b.find("form#logout");
        shoot(&b, &link.trim_start_matches('/').replace('/', "-"));
    }

    // Logout ends the session: back to the login form, and the old cookie
    // is refused afterwards.
    let old = b.cookie_header();
    assert_eq!(get_with_cookies(&d, &old, "/").status(), 200);
    submit(&b, "form#logout");
    b.find("form#login");
    let r = get_with_cookies(&d, &old, "/");
    let (status, location) = (
        r.status().as_u16(),
        r.headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned()),
    );
    let body = r.text().unwrap();
    assert!(
        (300..400).contains(&status) && location.as_deref().is_some_and(|l| l.contains("/login"))
            || status == 401
            || status == 403,
        "old cookie after logout: {status} {location:?}"
    );
    assert!(!body.contains("data-camera="), "the grid after logout");

    // A viewer sees no admin links, and gets 403 on an admin page.
    sign_in(&b, &d, "vera", "vera password");
    b.goto(&d.nvr_url("/"));
    assert_eq!(admin_links(&b), Vec::<String>::new());
    b.find(fig);
    shoot(&b, "live-viewer");
    let cookies = b.cookie_header();
    for page in ["/admin/cameras", "/admin/users"] {
        let r = get_with_cookies(&d, &cookies, page);
        assert_eq!(r.status(), 403, "viewer on {page}");
        b.goto(&d.nvr_url(page));
        assert!(b.try_find("form#camera-add").is_none() && b.try_find("form#user-add").is_none());
    }
}
