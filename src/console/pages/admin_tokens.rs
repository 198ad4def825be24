//! `/admin/tokens`: API tokens for integrations; a new one is shown once,
//! on the page that answers its form, and can be revoked later.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{html_with, shown_status, when};
use crate::console::error::{redirect, ConsoleError, ConsoleResult};
use crate::console::guard::{AdminOnly, Nav, NoFields, Posted, Signed};
use crate::console::ConsoleState;
use crate::nvr::store::{db, Role};
use crate::nvr::web::auth::mint_token;

/// A token as listed (never its secret).
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: &'static str,
    pub owner: String,
    pub created: String,
    pub expires: String,
    pub revoked: String,
}

#[derive(Template)]
#[template(path = "admin_tokens.html")]
struct ListView {
    nav: Option<Nav>,
    tokens: Vec<TokenRow>,
    /// The token just created, shown this once.
    created: Option<String>,
    error: Option<String>,
}

async fn page(
    st: &ConsoleState,
    who: &Signed,
    created: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> ConsoleResult<Response> {
    let (tokens, users) = st
        .nvr
        .store
        .read(|c| Ok((db::list_tokens(c, None)?, db::list_users(c)?)))
        .await?;
    let owner = |uid| {
        users
            .iter()
            .find(|u| u.id == uid)
            .map(|u| u.username.clone())
            .unwrap_or_else(|| format!("user {uid}"))
    };
    let rows = tokens
        .into_iter()
        .map(|t| TokenRow {
            owner: owner(t.user_id),
            id: t.id,
            name: t.name,
            role: t.role.as_str(),
            created: when(t.created_at),
            expires: t.expires_at.map(when).unwrap_or_else(|| "never".into()),
            revoked: t.revoked_at.map(when).unwrap_or_default(),
        })
        .collect();
    let view = ListView {
        nav: Some(who.nav()),
        tokens: rows,
        created,
        error,
    };
    html_with(&view, status)
}

/// `GET /admin/tokens`.
pub async fn list(
    State(st): State<Arc<ConsoleState>>,
    AdminOnly(who): AdminOnly,
) -> ConsoleResult<Response> {
    page(&st, &who, None, None, StatusCode::OK).await
}

/// The new-token form.
#[derive(Deserialize)]
pub struct NewToken {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    /// Lifetime in days; empty for no expiry.
    #[serde(default)]
    expires_days: String,
}

/// `POST /admin/tokens` (form `token-add`): mints a token and shows it once.
pub async fn create(
    State(st): State<Arc<ConsoleState>>,
    Posted(who, form): Posted<NewToken>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    let role = Role::parse(form.role.trim()).unwrap_or(Role::Viewer);
    let ttl = match form.expires_days.trim() {
        "" => None,
        d => Some(
            d.parse::<i64>()
                .ok()
                .and_then(|d| d.checked_mul(86_400))
                .ok_or_else(|| {
                    ConsoleError::BadRequest("expiry must be a whole number of days".into())
                })?,
        ),
    };
    match mint_token(&st.nvr, who.user.id, &form.name, role, ttl).await {
        Ok((_, token)) => page(&st, &who, Some(token), None, StatusCode::CREATED).await,
        Err(e) => {
            let e = ConsoleError::from(e);
            match shown_status(&e) {
                Some(status) => page(&st, &who, None, Some(e.to_string()), status).await,
                None => Err(e),
            }
        }
    }
}

/// `POST /admin/tokens/{id}/revoke`: revokes at once (the row stays for audit).
pub async fn revoke(
    State(st): State<Arc<ConsoleState>>,
    Path(id): Path<i64>,
    Posted(who, NoFields {}): Posted<NoFields>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    st.nvr
        .store
        .writer()
        .call(move |c, now| db::revoke_token(c, id, None, now))
        .await?;
    Ok(redirect("/admin/tokens"))
}
