//! Users: logins with an Argon2 hash, a role, and a token version that ends every JWT and console session of the user when bumped.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{is_unique_violation, revoke_user_tokens, role_col};
use crate::nvr::store::{Role, StoreError, User};

const USER_COLS: &str = "id, username, password_hash, role, token_version, created_at";

fn user_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        role: role_col(r, 3)?,
        token_version: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// A new user's first token version: random, so a credential of a removed
/// user that carried (id, version) cannot match a later user even where an
/// id was spent before V8 made ids never reused. Far below `i64::MAX`, so
/// bumping it never overflows.
fn first_token_version() -> i64 {
    rand::random_range(0..1i64 << 48)
}

/// Adds a user; `Conflict` when the name is taken.
pub fn create_user(
    conn: &Connection,
    username: &str,
    password_hash: &str,
    role: Role,
    now: i64,
) -> Result<User, StoreError> {
    conn.execute(
        "INSERT INTO users (username, password_hash, role, token_version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![
            username,
            password_hash,
            role.as_str(),
            first_token_version(),
            now
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("user")
        } else {
            e.into()
        }
    })?;
    user_by_name(conn, username)?.ok_or(StoreError::NotFound("user"))
}

/// Looks a user up by name.
pub fn user_by_name(conn: &Connection, username: &str) -> Result<Option<User>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLS} FROM users WHERE username = ?1"),
            [username],
            user_row,
        )
        .optional()?)
}

/// Looks a user up by id.
pub fn user_by_id(conn: &Connection, id: i64) -> Result<Option<User>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
            [id],
            user_row,
        )
        .optional()?)
}

/// Every user, by name.
pub fn list_users(conn: &Connection) -> Result<Vec<User>, StoreError> {
    let mut st = conn.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))?;
    let rows = st.query_map([], user_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many users exist; zero at first start means "create the initial admin".
pub fn count_users(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
}

/// Adds a user unless `max_users` exist already (`Refused`; `Conflict` when
/// the name is taken): the bound on how many logins an admin can make us keep.
pub fn add_user(
    conn: &Connection,
    username: &str,
    password_hash: &str,
    role: Role,
    now: i64,
    max_users: usize,
) -> Result<User, StoreError> {
    let n = count_users(conn)?;
    if n >= max_users as i64 {
        return Err(StoreError::Refused(format!(
            "there are {n} users, the most allowed (nvr.max_users)"
        )));
    }
    create_user(conn, username, password_hash, role, now)
}

/// `Refused` when `user` is the only admin: removing or demoting it would
/// leave nobody able to administer the box over HTTP.
fn keep_an_admin(conn: &Connection, user: &User) -> Result<(), StoreError> {
    if user.role != Role::Admin {
        return Ok(());
    }
    let others: i64 = conn.query_row(
        "SELECT count(*) FROM users WHERE role = 'admin' AND id != ?1",
        [user.id],
        |r| r.get(0),
    )?;
    if others == 0 {
        return Err(StoreError::Refused(
            "the last admin cannot be removed or demoted".into(),
        ));
    }
    Ok(())
}

fn existing(conn: &Connection, id: i64) -> Result<User, StoreError> {
    user_by_id(conn, id)?.ok_or(StoreError::NotFound("user"))
}

/// Ends everything a user signed in with: their API tokens are revoked and
/// their token version moves on, which ends their access and refresh JWTs
/// and console sessions at the next request (each is checked against the
/// user's row on every use).
fn end_everything(conn: &Connection, user_id: i64, now: i64) -> Result<(), StoreError> {
    revoke_user_tokens(conn, user_id, now)?;
    end_sessions(conn, user_id, now)
}

/// Gives a user another role; `Refused` when that would demote the last
/// admin. A change revokes the user's API tokens (an API token carries the
/// role it was minted with); their JWTs and console sessions stand, and
/// take the new role from this row at their next request. The same role
/// changes nothing.
pub fn set_role(conn: &Connection, id: i64, role: Role, now: i64) -> Result<User, StoreError> {
    let user = existing(conn, id)?;
    if user.role == role {
        return Ok(user);
    }
    if role != Role::Admin {
        keep_an_admin(conn, &user)?;
    }
    revoke_user_tokens(conn, id, now)?;
    conn.execute(
        "UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, role.as_str(), now],
    )?;
    existing(conn, id)
}

/// Replaces a user's password and ends every credential they hold (API
/// tokens, JWTs, console sessions): a reset is what follows a leaked or
/// forgotten password.
pub fn set_password(
    conn: &Connection,
    id: i64,
    password_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    existing(conn, id)?;
    end_everything(conn, id, now)?;
    conn.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, password_hash, now],
    )?;
    Ok(())
}

/// Removes a user, and with them their API tokens (the foreign key
/// cascades); their JWTs and console sessions find no row at their next
/// request. `Refused` for the last admin.
pub fn delete_user(conn: &Connection, id: i64) -> Result<(), StoreError> {
    let user = existing(conn, id)?;
    keep_an_admin(conn, &user)?;
    conn.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(())
}

/// Bumps a user's token version: every JWT (access and refresh) issued
/// before, and every console session, stops working at its next use
/// (logout, password reset).
pub fn end_sessions(conn: &Connection, user_id: i64, now: i64) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE users SET token_version = token_version + 1, updated_at = ?2 WHERE id = ?1",
        params![user_id, now],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}
