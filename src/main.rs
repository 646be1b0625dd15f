//! The `ieum` binary: parses flags and hands over to [`ieum::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    ieum::cli::run(ieum::cli::Cli::parse())
}
