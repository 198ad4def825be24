//! API tokens: only a hash is stored; revoked ones stay for the audit trail.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::role_col;
use crate::nvr::store::{ApiToken, Role, StoreError};

const TOKEN_COLS: &str = "id, user_id, name, role, created_at, expires_at, revoked_at";

fn token_row(r: &Row) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        role: role_col(r, 3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

/// Stores a token's hash.
pub fn create_token(
    conn: &Connection,
    user_id: i64,
    name: &str,
    token_hash: &str,
    role: Role,
    now: i64,
    expires_at: Option<i64>,
) -> Result<ApiToken, StoreError> {
    conn.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, role, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user_id, name, token_hash, role.as_str(), now, expires_at],
    )?;
    let id = conn.last_insert_rowid();
    Ok(conn.query_row(
        &format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE id = ?1"),
        [id],
        token_row,
    )?)
}

/// Tokens, newest first; all users' when `user_id` is `None`.
pub fn list_tokens(conn: &Connection, user_id: Option<i64>) -> Result<Vec<ApiToken>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {TOKEN_COLS} FROM api_tokens WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id DESC"
    ))?;
    let rows = st.query_map([user_id], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks a token revoked (kept for the audit trail). `NotFound` if it does
/// not exist or belongs to someone else when `user_id` is given.
pub fn revoke_token(
    conn: &Connection,
    id: i64,
    user_id: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?3)
         WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)",
        params![id, user_id, now],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("token"));
    }
    Ok(())
}

/// Revokes every live token of a user (their password or role changed).
pub fn revoke_user_tokens(conn: &Connection, user_id: i64, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        params![user_id, now],
    )?;
    Ok(())
}

/// The live token with this hash and its owner's name, if it is usable at `now`.
pub fn token_by_hash(
    conn: &Connection,
    token_hash: &str,
    now: i64,
) -> Result<Option<(ApiToken, String)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT t.id, t.user_id, t.name, t.role, t.created_at, t.expires_at, t.revoked_at,
                    u.username
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ?1 AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > ?2)",
            params![token_hash, now],
            |r| Ok((token_row(r)?, r.get(7)?)),
        )
        .optional()?)
}

/// Whether the token with this id is usable at `now` (not revoked, not
/// expired, its user still there): what an open stream re-checks.
pub fn token_live(conn: &Connection, id: i64, now: i64) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.id = ?1 AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > ?2)",
            params![id, now],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
