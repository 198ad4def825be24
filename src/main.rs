//! The `opennvr-edge` binary: parses the command line and hands off to `cmd`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use opennvr_edge::cmd;

#[derive(Parser)]
#[command(name = "opennvr-edge", version, about = "NVR with on-device AI")]
struct Cli {
    /// TOML config file (see packaging/config.example.toml).
    #[arg(long, global = true, env = "OPENNVR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the AI adapter (9100) and the NVR core (8000), and record cameras.
    Run(cmd::run::RunArgs),
    /// Run one task on image files and print the API's JSON.
    Infer(cmd::infer::InferArgs),
    /// List installed models and verify their sha256.
    Models {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Manage NVR logins (the first admin, passwords).
    #[command(subcommand)]
    User(cmd::user::UserCmd),
    /// Check the database's integrity.
    Check,
    /// Create the data dir, database, JWT secret and first admin, then exit.
    Init,
}

fn main() -> ExitCode {
    cmd::logging::init();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let cfg = cmd::load_config(cli.config.as_deref())?;
    match cli.command {
        Command::Run(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(cmd::run::run(cfg, args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Infer(args) => {
            cmd::infer::infer(cfg, args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Models { json } => cmd::models::models(cfg, json),
        Command::User(c) => {
            cmd::user::user(cfg, c)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => cmd::check::check(cfg),
        Command::Init => {
            cmd::init::init(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
