//! The `ieum` binary: parses flags and hands over to [`ieum::cli`].
//!
//! The allocator is chosen here, for the binary only (tests and the library keep the
//! system's). mimalloc: under load the service spent about a quarter of its CPU in glibc's
//! malloc and free, and with mimalloc it needs about a quarter less CPU per message
//! (`BENCHMARKS.md`). Built without transparent huge pages (`no_thp`): with them the
//! service was 76 MiB resident before its first connection; without, 48 MiB (glibc: 27).

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ieum::cli::run(ieum::cli::Cli::parse())
}
