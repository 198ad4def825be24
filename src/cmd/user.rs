//! `opennvr-edge user add|list|passwd`: manage logins from the box itself,
//! including the first admin, without any HTTP endpoint being open.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::nvr::auth::password;
use crate::nvr::store::{db, Role};

/// `user` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum UserCmd {
    /// Add a user.
    Add {
        #[arg(long)]
        username: String,
        /// `admin` (read and write) or `viewer` (read only).
        #[arg(long, default_value = "viewer", value_parser = parse_role)]
        role: Role,
        /// Read the password from the first line of stdin (for scripts);
        /// without it the password is prompted for on a terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Change a user's password (revokes their refresh tokens and API tokens).
    Passwd {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("role must be admin or viewer, not {s:?}"))
}

/// Reads one line: the password. Passwords never come from argv, which
/// other local users can see in `ps`.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !from_stdin && stdin.is_terminal() {
        eprint!("password: ");
    } else if !from_stdin {
        bail!("pass --password-stdin to read the password from a pipe");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading password")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    password::validate(&pw)?;
    Ok(pw)
}

/// Runs a `user` subcommand against the database in the data dir (safe
/// while the daemon runs: SQLite serialises the two writers).
pub fn user(cfg: Config, cmd: UserCmd) -> anyhow::Result<()> {
    let conn = super::open_db(&cfg)?;
    let now = SystemClock.now_ms();
    match cmd {
        UserCmd::Add {
            username,
            role,
            password_stdin,
        } => {
            password::validate_username(&username)?;
            let pw = read_password(password_stdin)?;
            let u = db::create_user(&conn, &username, &password::hash(&pw)?, role, now)?;
            println!("added {} ({})", u.username, u.role.as_str());
        }
        UserCmd::List => {
            for u in db::list_users(&conn)? {
                println!("{:<24} {}", u.username, u.role.as_str());
            }
        }
        UserCmd::Passwd {
            username,
            password_stdin,
        } => {
            let pw = read_password(password_stdin)?;
            let u = db::user_by_name(&conn, &username)?
                .with_context(|| format!("no user named {username:?}"))?;
            db::set_password(&conn, u.id, &password::hash(&pw)?, now)?;
            println!("password changed for {username}");
        }
    }
    Ok(())
}
