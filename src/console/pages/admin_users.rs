//! `/admin/users`: list, add, change role, reset password, remove. The
//! store keeps the rules (`db::add_user`, `set_role`, `set_password`,
//! `delete_user`: the last admin stays, the count is bounded, a changed
//! role or password ends the user's tokens and console sessions); new
//! passwords are checked and hashed as the users API does.

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
use crate::nvr::auth::password;
use crate::nvr::store::{db, Role};

/// A user as listed (never the hash).
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub role: &'static str,
    pub created: String,
    /// The signed-in admin's own row (not removable from here).
    pub me: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct ListView {
    nav: Option<Nav>,
    csrf: String,
    users: Vec<UserRow>,
    error: Option<String>,
    done: Option<String>,
}

async fn page(
    st: &ConsoleState,
    who: &Signed,
    error: Option<String>,
    done: Option<String>,
    status: StatusCode,
) -> ConsoleResult<Response> {
    let users = st.nvr.store.read(db::list_users).await?;
    let view = ListView {
        nav: Some(who.nav()),
        csrf: who.csrf.clone(),
        users: users
            .into_iter()
            .map(|u| UserRow {
                me: u.id == who.user.id,
                id: u.id,
                role: u.role.as_str(),
                created: when(u.created_at),
                username: u.username,
            })
            .collect(),
        error,
        done,
    };
    html_with(&view, status)
}

/// Shows a refused change (bad input, a conflict, the last admin) on the
/// page with its status; anything else is the error page.
async fn outcome(
    st: &ConsoleState,
    who: &Signed,
    r: ConsoleResult<String>,
) -> ConsoleResult<Response> {
    let e = match r {
        Ok(done) => return page(st, who, None, Some(done), StatusCode::OK).await,
        Err(e) => e,
    };
    match shown_status(&e) {
        Some(status) => page(st, who, Some(e.to_string()), None, status).await,
        None => Err(e),
    }
}

fn role_of(s: &str) -> ConsoleResult<Role> {
    Role::parse(s.trim())
        .ok_or_else(|| ConsoleError::BadRequest("role must be admin or viewer".into()))
}

/// `GET /admin/users`.
pub async fn list(
    State(st): State<Arc<ConsoleState>>,
    AdminOnly(who): AdminOnly,
) -> ConsoleResult<Response> {
    page(&st, &who, None, None, StatusCode::OK).await
}

/// The new-user form (`user-add`).
#[derive(Deserialize)]
pub struct NewUser {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
}

async fn hashed(st: &ConsoleState, pw: String) -> ConsoleResult<String> {
    password::validate(&pw)?;
    Ok(st.nvr.limits.hashing.hash(pw).await?)
}

/// `POST /admin/users`: adds a user.
pub async fn add(
    State(st): State<Arc<ConsoleState>>,
    Posted(who, form): Posted<NewUser>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    let r = async {
        let name = form.username.trim().to_owned();
        password::validate_username(&name)?;
        let role = role_of(&form.role)?;
        let hash = hashed(&st, form.password).await?;
        let max = st.nvr.limits.max_users;
        let u = st
            .nvr
            .store
            .writer()
            .call(move |c, now| db::add_user(c, &name, &hash, role, now, max))
            .await?;
        tracing::info!(user = %u.username, by = %who.user.username, "user added in the console");
        Ok(format!("Added {}.", u.username))
    }
    .await;
    outcome(&st, &who, r).await
}

/// The change-role form.
#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /admin/users/{id}/role`.
pub async fn role(
    State(st): State<Arc<ConsoleState>>,
    Path(id): Path<i64>,
    Posted(who, form): Posted<RoleForm>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    let r = async {
        let role = role_of(&form.role)?;
        let u = st
            .nvr
            .store
            .writer()
            .call(move |c, now| db::set_role(c, id, role, now))
            .await?;
        Ok(format!("{} is now {}.", u.username, u.role.as_str()))
    }
    .await;
    outcome(&st, &who, r).await
}

/// The reset-password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
}

/// `POST /admin/users/{id}/password`: sets a new password (the user's
/// tokens and sessions end).
pub async fn password(
    State(st): State<Arc<ConsoleState>>,
    Path(id): Path<i64>,
    Posted(who, form): Posted<PasswordForm>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    let r = async {
        let hash = hashed(&st, form.password).await?;
        st.nvr
            .store
            .writer()
            .call(move |c, now| db::set_password(c, id, &hash, now))
            .await?;
        Ok("Password reset.".to_owned())
    }
    .await;
    outcome(&st, &who, r).await
}

/// `POST /admin/users/{id}/delete`: not oneself, never the last admin.
pub async fn remove(
    State(st): State<Arc<ConsoleState>>,
    Path(id): Path<i64>,
    Posted(who, NoFields {}): Posted<NoFields>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    if id == who.user.id {
        let e = ConsoleError::BadRequest("you cannot remove your own account".into());
        return outcome(&st, &who, Err(e)).await;
    }
    let r = st
        .nvr
        .store
        .writer()
        .call(move |c, _| db::delete_user(c, id))
        .await;
    match r {
        Ok(()) => Ok(redirect("/admin/users")),
        Err(e) => outcome(&st, &who, Err(e.into())).await,
    }
}
