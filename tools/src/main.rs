//! The `ndstream` command: a thin shell over the library (ripgrep style):
//! clap parses the raw arguments ([`cli`]), each command validates them
//! into typed settings ([`config`]) and runs. Adding a subcommand is one
//! variant in [`cli::Command`], one module, and one arm in [`run`].
//!
//! Errors print as one `error: ...` line with the cause chain. Exit
//! status: 0 on success, 2 for bad usage or bad input (arguments,
//! expressions, missing files, shapes), 1 for runtime failures (reads,
//! writes), 130 when interrupted with Ctrl-C.

use ndstream_cli::{cli, cmd, config, demo, expr, plot, stress};

use std::process::ExitCode;

/// mimalloc keeps freed tile buffers for reuse instead of returning them to
/// the OS and faulting them in again (glibc's trim), which made fused
/// chains several times slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use cli::{Cli, Command};

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Info(a) => cmd::info::run(a),
        Command::Convert(a) => cmd::convert::run(a, cli.quiet),
        Command::Eval(a) => cmd::eval::run(a, cli.quiet),
        Command::Plot(a) => plot::run(a, cli.quiet),
        Command::Stress(a) => stress::run(a, cli.quiet),
        Command::Demo(a) => demo::run(a),
        Command::Plan(a) => cmd::plan::plan(a, cli.quiet),
        Command::RunTask(a) => cmd::plan::run_task(a, cli.quiet),
        Command::Run(a) => cmd::plan::run(a, cli.quiet),
        Command::Status(a) => cmd::plan::status(a),
        Command::Slurm(a) => cmd::plan::slurm(a),
    }
}

/// The exit status for an error: the first classifiable error in the chain decides.
fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<config::UsageError>()
            || cause.is::<expr::SourcedError>()
            || cause.is::<expr::ExprError>()
        {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<ndstream::Error>() {
            return match e {
                ndstream::Error::Cancelled => 130,
                ndstream::Error::Source { .. }
                | ndstream::Error::Sink { .. }
                | ndstream::Error::Kernel { .. }
                | ndstream::Error::WorkerPanic { .. }
                | ndstream::Error::ThreadStart { .. } => 1,
                // Opening fails for a bad path or file (the user's input:
                // 2) or because the system failed (no space, no permission,
                // an I/O error: 1).
                ndstream::Error::Open { cause: Some(c), .. } => {
                    match c.downcast_ref::<std::io::Error>().map(|e| e.kind()) {
                        Some(
                            std::io::ErrorKind::NotFound
                            | std::io::ErrorKind::AlreadyExists
                            | std::io::ErrorKind::InvalidInput
                            | std::io::ErrorKind::InvalidData
                            | std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::NotADirectory
                            | std::io::ErrorKind::IsADirectory,
                        )
                        | None => 2,
                        Some(_) => 1,
                    }
                }
                _ => 2,
            };
        }
        if cause.is::<std::io::Error>() || cause.is::<image::ImageError>() {
            return 1;
        }
    }
    1
}

/// The error and its causes on one line, `: `-separated, leaving out a
/// cause whose text the line already ends with (many errors quote their
/// cause in their own message).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error (a bug in ndstream, please report it): {info}");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}
