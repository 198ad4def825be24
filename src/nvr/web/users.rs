//! `/api/v1/users` (admin): list, add, change role or reset password, remove.
//!
//! Shaped like upstream OpenNVR's users router (`{users, total}` lists, the
//! `role_id`/`role_name`/`is_superuser` fields its clients read), with our two
//! roles. The rules live in the store (`db::add_user`, `set_role`,
//! `set_password`, `delete_user`), so the console's admin page keeps them
//! too: the last admin stays, the count is bounded, a changed role revokes
//! the user's API tokens and counts for their JWTs at the next request, and
//! a password reset or a removal ends every credential they hold at its
//! next use (docs/security.md, "Revocation"). Password hashes never leave
//! the store.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{WebError, WebResult};
use super::extract::{Json as JsonBody, Path};
use super::{Admin, NvrState};
use crate::nvr::auth::{password, AuthError, Credential, Principal};
use crate::nvr::store::{db, Role, User};

/// A user as the API shows it: ours (`id`, `username`, `role`) beside the
/// fields upstream's clients decide tiers from. `role_id` is 1 for admin,
/// 2 for viewer; we keep no e-mail and have no MFA.
pub fn account(id: i64, username: &str, role: Role) -> Value {
    let admin = role == Role::Admin;
    json!({
        "id": id,
        "username": username,
        "role": role,
        "is_superuser": admin,
        "role_name": role.as_str(),
        "role_id": if admin { 1 } else { 2 },
        "email": null,
        "mfa_enabled": false,
        "is_active": true,
    })
}

fn public(u: &User) -> Value {
    let mut v = account(u.id, &u.username, u.role);
    v["created_at"] = json!(u.created_at);
    v
}

/// The role a body names, by `role` or by upstream's `role_id`; `None` when neither.
fn role_of(role: Option<Role>, role_id: Option<i64>) -> WebResult<Option<Role>> {
    let by_id = match role_id {
        None => None,
        Some(1) => Some(Role::Admin),
        Some(2) => Some(Role::Viewer),
        Some(_) => {
            return Err(WebError::BadRequest(
                "role_id must be 1 (admin) or 2 (viewer)".into(),
            ))
        }
    };
    match (role, by_id) {
        (Some(a), Some(b)) if a != b => Err(WebError::BadRequest(
            "role and role_id name different roles".into(),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// Only a logged-in user (a JWT) may add users or set passwords: a login
/// made with an API token would outlive the token and survive its
/// revocation (the rule `POST /api/v1/tokens` keeps too).
fn signed_in(p: &Principal) -> WebResult<()> {
    match p.credential {
        Credential::ApiToken { .. } => Err(AuthError::TokenCannotGrant.into()),
        Credential::Jwt { .. } => Ok(()),
    }
}

/// `POST /api/v1/users` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    /// Least privilege by default.
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    role_id: Option<i64>,
}

/// `PATCH` (or upstream's `PUT`) `/api/v1/users/{id}` body: either or both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    role_id: Option<i64>,
    #[serde(default)]
    password: Option<String>,
}

/// `GET /api/v1/users` (admin): `{users, total}`, by name.
pub async fn list(State(st): State<Arc<NvrState>>, _: Admin) -> WebResult<Json<Value>> {
    let users = st.store.read(db::list_users).await?;
    let total = users.len();
    let users: Vec<Value> = users.iter().map(public).collect();
    Ok(Json(json!({ "users": users, "total": total })))
}

/// `GET /api/v1/users/{id}` (admin).
pub async fn get_one(
    State(st): State<Arc<NvrState>>,
    _: Admin,
    Path(id): Path<i64>,
) -> WebResult<Json<Value>> {
    let u = st.store.read(move |c| db::user_by_id(c, id)).await?;
    Ok(Json(public(&u.ok_or(WebError::NotFound("user"))?)))
}

/// `POST /api/v1/users` (admin, signed in): 201 with the new user; 409 when
/// the name is taken or `nvr.max_users` exist.
pub async fn create(
    State(st): State<Arc<NvrState>>,
    Admin(by): Admin,
    JsonBody(b): JsonBody<NewUser>,
) -> WebResult<(StatusCode, Json<Value>)> {
    signed_in(&by)?;
    password::validate_username(&b.username)?;
    password::validate(&b.password)?;
    let role = role_of(b.role, b.role_id)?.unwrap_or(Role::Viewer);
    let hash = st.limits.hashing.hash(b.password).await?;
    let (name, max) = (b.username, st.limits.max_users);
    let u = st
        .store
        .writer()
        .call(move |c, now| db::add_user(c, &name, &hash, role, now, max))
        .await?;
    tracing::info!(user = %u.username, role = u.role.as_str(), by = %by.username, "user added");
    Ok((StatusCode::CREATED, Json(public(&u))))
}

/// `PATCH /api/v1/users/{id}` (admin, signed in): a new role and/or a
/// password reset, both or neither (one transaction). A new role revokes
/// the user's API tokens, and their JWTs carry it from the next request; a
/// reset ends all their credentials; 409 when it would demote the last
/// admin. A role change too needs a login: with an API token an admin could
/// otherwise promote a user whose password the token's holder knows.
pub async fn update(
    State(st): State<Arc<NvrState>>,
    Admin(by): Admin,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<UserChange>,
) -> WebResult<Json<Value>> {
    signed_in(&by)?;
    let role = role_of(b.role, b.role_id)?;
    if role.is_none() && b.password.is_none() {
        return Err(WebError::BadRequest(
            "nothing to change: give `role` and/or `password`".into(),
        ));
    }
    let hash = match b.password {
        Some(pw) => {
            password::validate(&pw)?;
            Some(st.limits.hashing.hash(pw).await?)
        }
        None => None,
    };
    let reset = hash.is_some();
    let u = st
        .store
        .writer()
        .call(move |c, now| {
            if let Some(role) = role {
                db::set_role(c, id, role, now)?;
            }
            if let Some(hash) = &hash {
                db::set_password(c, id, hash, now)?;
            }
            db::user_by_id(c, id)?.ok_or(crate::nvr::store::StoreError::NotFound("user"))
        })
        .await?;
    tracing::info!(user = %u.username, role = u.role.as_str(), password_reset = reset, by = %by.username, "user changed");
    Ok(Json(public(&u)))
}

/// `DELETE /api/v1/users/{id}` (admin): removes the user and their API
/// tokens. Not oneself (as upstream: the caller would lock themselves out
/// mid-session), and never the last admin (409).
pub async fn remove(
    State(st): State<Arc<NvrState>>,
    Admin(by): Admin,
    Path(id): Path<i64>,
) -> WebResult<Json<Value>> {
    if id == by.user_id {
        return Err(WebError::BadRequest(
            "you cannot delete your own account".into(),
        ));
    }
    st.store
        .writer()
        .call(move |c, _| db::delete_user(c, id))
        .await?;
    tracing::info!(user_id = id, by = %by.username, "user removed");
    Ok(Json(json!({ "message": "User deleted successfully" })))
}
