//! The `tether` command; the work is done in the `tether_supervisor` library.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tether_supervisor::cli::{Cli, Command};
use tether_supervisor::control::{ClientError, Request};
use tether_supervisor::{AskError, ask, up};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.subcommand() {
        Command::Up => match up(&cli.options).context("tether could not run") {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!("{err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Reload => client(&cli, Request::Reload),
        Command::Status => client(&cli, Request::Status),
        Command::Stop => client(&cli, Request::Shutdown),
    }
}

fn client(cli: &Cli, request: Request) -> ExitCode {
    match ask(&cli.options, request) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // The message is the whole story; no "caused by" chain needed.
        Err(AskError::Client(err @ ClientError::NotRunning { .. })) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            let err = anyhow::Error::new(err).context(format!("tether {}", request.as_str()));
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, where systemd's journal and runit's svlogd collect them; colours
/// only for a human at a terminal.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
