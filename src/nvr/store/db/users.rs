//! Users: logins with an Argon2 hash, a role, and a token version that revokes refresh tokens when bumped.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{is_unique_violation, role_col};
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

/// Adds a user; `Conflict` when the name is taken.
pub fn create_user(
    conn: &Connection,
    username: &str,
    password_hash: &str,
    role: Role,
    now: i64,
) -> Result<User, StoreError> {
    conn.execute(
        "INSERT INTO users (username, password_hash, role, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![username, password_hash, role.as_str(), now],
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

/// Replaces a password and bumps the token version, which revokes every
/// refresh token issued before.
pub fn set_password(
    conn: &Connection,
    username: &str,
    password_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE users SET password_hash = ?2, token_version = token_version + 1, updated_at = ?3
         WHERE username = ?1",
        params![username, password_hash, now],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

/// Bumps a user's token version: every refresh token issued before stops
/// working (logout; JWTs are stateless, so this is what can be revoked).
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
