//! The pages, one file per area; each renders an askama template whose
//! base (`layout.html`) carries the nav, the stylesheet and the scripts.

pub mod admin_cameras;
pub mod admin_system;
pub mod admin_tokens;
pub mod admin_users;
pub mod events;
pub mod live;
pub mod login;
pub mod recordings;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::error::{ConsoleError, ConsoleResult};
use super::guard::Nav;

/// A rendered page (200 unless the caller sets another status).
pub fn html<T: Template>(page: &T) -> ConsoleResult<Response> {
    page.render()
        .map(|s| Html(s).into_response())
        .map_err(|e| ConsoleError::Render(e.to_string()))
}

/// A rendered page with `status` (a form's answer: 201, or a 4xx that shows the form's error).
pub fn html_with<T: Template>(page: &T, status: StatusCode) -> ConsoleResult<Response> {
    let mut resp = html(page)?;
    *resp.status_mut() = status;
    Ok(resp)
}

/// The status of an error a form's page shows to its user (bad input, a
/// conflict, a refusal); `None` for the rest, which get the error page.
pub fn shown_status(e: &ConsoleError) -> Option<StatusCode> {
    let status = match e {
        ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ConsoleError::Web(w) => w.status_code().0,
        _ => return None,
    };
    status.is_client_error().then_some(status)
}

/// The page of an error.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorView {
    nav: Option<Nav>,
    status: u16,
    message: String,
}

/// The error page for `status` with `message` (the nav when signed in).
pub fn error_page(nav: Option<Nav>, status: u16, message: String) -> Response {
    let view = ErrorView {
        nav,
        status,
        message,
    };
    match view.render() {
        Ok(s) => Html(s).into_response(),
        // Rendering fixed text cannot fail; if it did, the status alone goes out.
        Err(_) => ().into_response(),
    }
}

/// `ms` (epoch milliseconds) as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

/// Characters `range` of [`when`]'s text (`..10` the date, `11..16` the
/// time to the minute); empty where `when` has none (a time past year 9999
/// or before year 0), so no input can make a page panic.
pub fn when_part(ms: i64, range: std::ops::Range<usize>) -> String {
    when(ms).get(range).unwrap_or_default().to_owned()
}

/// Midnight UTC of the day a form gives as `YYYY-MM-DD`; `None` for
/// anything else (other lengths, signs, numbers read as instants).
pub fn parse_day(d: &str) -> Option<i64> {
    let b = d.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    let num = |r: std::ops::Range<usize>| d.get(r)?.parse::<u16>().ok();
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::from(num(0..4)?),
        month,
        u8::try_from(num(8..10)?).ok()?,
    )
    .ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// A duration in milliseconds as people read it: `45 s`, `3 min 20 s`, `1 h 5 min`.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// Midnight UTC of the day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(86_400_000)
}
