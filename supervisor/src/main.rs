//! The `tether` command; the work is done in the `tether_supervisor` library.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tether_supervisor::{AskError, Cli, ClientError, Command, Request, ask, up};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = tether_log::init();
    match cli.subcommand() {
        Command::Up => match up(&cli.options).context("tether could not run") {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!("{err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Reload => client(&cli, Request::Reload),
        Command::UpgradeProxy => client(&cli, Request::UpgradeProxy),
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
            say_error(&err.to_string());
            ExitCode::FAILURE
        }
        Err(err) => {
            let err = anyhow::Error::new(err).context(format!("tether {}", request.as_str()));
            say_error(&format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}

/// The command's error for the person who ran it; a stderr that fails must not turn into a
/// panic (`eprintln!` would).
fn say_error(message: &str) {
    let _ = writeln!(std::io::stderr(), "error: {message}");
}
