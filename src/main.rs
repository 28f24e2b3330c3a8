//! The `camhub` binary: command line, config, logging, signals, and nothing else.

#![forbid(unsafe_code)]

use camhub::app::App;
use camhub::config::{Cli, Config};
use camhub::shutdown::Shutdown;
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

/// SIGTERM to exit must take under 2 s (systemd, and users pulling the plug on a stream).
const STOP_TIMEOUT: Duration = Duration::from_millis(1800);

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    if cli.list_devices {
        print!("{}", camhub::discover::list_devices());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("camhub: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check_config {
        print!("{}", config.summary());
        println!("config OK");
        return ExitCode::SUCCESS;
    }

    let shutdown = Shutdown::new();
    if let Err(e) = watch_signals(shutdown.clone()) {
        eprintln!("camhub: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let app = match App::start(&config, shutdown.clone()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("camhub: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        streams = config.streams.len(),
        "camhub {} listening on http://{}/",
        env!("CARGO_PKG_VERSION"),
        app.local_addr()
    );
    // systemd (Type=notify): ready means the port is bound and sources are started.
    // Outside systemd there is no NOTIFY_SOCKET and this does nothing.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    smol::block_on(shutdown.wait());
    tracing::info!("shutting down");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    if !app.stop(STOP_TIMEOUT) {
        tracing::warn!("exiting with threads still running");
    }
    ExitCode::SUCCESS
}

/// SIGINT/SIGTERM trigger shutdown; a second one exits at once.
fn watch_signals(shutdown: Shutdown) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if shutdown.is_triggered() {
                    std::process::exit(130);
                }
                shutdown.trigger();
            }
        })?;
    Ok(())
}
