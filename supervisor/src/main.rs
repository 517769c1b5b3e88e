//! The `tether` command; the work is done in the `tether_supervisor` library.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tether_supervisor::{AskError, Cli, ClientError, Command, Request, admin, ask, link_certs, up};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = match cli.options.log_format {
        Some(format) => tether_log::init_as(format),
        None => tether_log::init(),
    };
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
        Command::UpgradeSupervisor => upgrade_supervisor(&cli),
        Command::Status => {
            let answered = client(&cli, Request::Status);
            if answered == ExitCode::SUCCESS {
                for line in tether_supervisor::proxy_status(&cli.options) {
                    println!("{line}");
                }
            }
            answered
        }
        Command::Stop => client(&cli, Request::Shutdown),
        Command::Admin(action) => match admin(&cli.options, &action) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                say_error(&format!("tether admin: {err:#}"));
                ExitCode::FAILURE
            }
        },
        Command::LinkCerts(action) => match link_certs(&cli.options, &action) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                say_error(&format!("tether link-certs: {err:#}"));
                ExitCode::FAILURE
            }
        },
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

/// Asks for the re-exec, then waits until the new image answers (its generation says it is
/// the new one): the command returns once the upgraded supervisor is in charge.
fn upgrade_supervisor(cli: &Cli) -> ExitCode {
    let mut said = Vec::new();
    let ok =
        match tether_supervisor::ask_quietly(&cli.options, Request::UpgradeSupervisor, |line| {
            println!("{line}");
            said.push(line.to_string());
        }) {
            Ok(ok) => ok,
            Err(err) => {
                say_error(&format!("tether upgrade-supervisor: {err}"));
                return ExitCode::FAILURE;
            }
        };
    let generation = said.iter().find_map(|line| {
        let (_, rest) = line.split_once("generation ")?;
        rest.trim_end_matches(')').parse::<u32>().ok()
    });
    let (true, Some(generation)) = (ok, generation) else {
        return ExitCode::FAILURE;
    };
    let started = std::time::Instant::now();
    let wanted = format!("generation {generation}");
    while started.elapsed() < std::time::Duration::from_secs(60) {
        let mut status = Vec::new();
        let answered = tether_supervisor::ask_quietly(&cli.options, Request::Status, |line| {
            status.push(line.to_string())
        });
        if matches!(answered, Ok(true)) && status.first().is_some_and(|line| line.contains(&wanted))
        {
            println!(
                "ok: the new supervisor answers after {} ms",
                started.elapsed().as_millis()
            );
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    say_error("tether upgrade-supervisor: the new supervisor did not answer within 60 s");
    ExitCode::FAILURE
}

/// The command's error for the person who ran it; a stderr that fails must not turn into a
/// panic (`eprintln!` would).
fn say_error(message: &str) {
    let _ = writeln!(std::io::stderr(), "error: {message}");
}
