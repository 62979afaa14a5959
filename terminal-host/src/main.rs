//! `terminal-host`: serves PTY-backed shells over WebSocket for the Arcana dashboard.
//! Configuration is flags or environment (see `--help`); `arcana up` starts it locally.

use clap::Parser;
use terminal_host::config::Config;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    terminal_host::init_logging(&config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(terminal_host::serve(
        config,
        terminal_host::shutdown_signal(),
    )) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
