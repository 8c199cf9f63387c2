//! The kernels check (`wgsl_nn::conformance`) on this machine's adapter: every kernel family
//! against the CPU oracle, one row per case, as the web page runs it in the browser.
//!
//! `cargo run --release --example check` (`WGSL_NN_ADAPTER`, `WGSL_NN_BACKEND` and
//! `WGSL_NN_PROFILE` choose the adapter and the profile). Exits with status 1 when a row fails.

use std::process::ExitCode;

use clap::Parser;
use wgsl_nn::Device;
use wgsl_nn::conformance::{self, Outcome, Summary};

/// Runs every kernel family on the adapter against the CPU oracle and prints a row per case;
/// exit status 1 if any case fails.
#[derive(Debug, Parser)]
struct Args {}

fn main() -> ExitCode {
    env_logger::init();
    Args::parse();
    let device = match Device::new() {
        Ok(device) => device,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "adapter: {} (profile {})",
        device.adapter(),
        device.profile()
    );
    println!("{:<22} {:<44} outcome", "family", "case");
    let rows = pollster::block_on(conformance::run(&device, |row| {
        let outcome = match &row.outcome {
            Outcome::Passed { worst_error } => format!("passed (worst error {worst_error:.2e})"),
            Outcome::Failed(why) => format!("FAILED: {why}"),
            Outcome::Skipped(why) => format!("skipped: {why}"),
        };
        println!("{:<22} {:<44} {outcome}", row.family, row.case);
    }));
    let summary = Summary::of(&rows);
    println!(
        "{} cases: {} passed, {} failed, {} skipped; worst error {:.2e}",
        summary.rows,
        summary.rows - summary.failed - summary.skipped,
        summary.failed,
        summary.skipped,
        summary.worst_error
    );
    if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
