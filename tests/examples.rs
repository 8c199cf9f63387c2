//! Every example's command line, as a newcomer meets it: `--help` prints the usage, and an
//! unknown flag or a stray argument is an error with the usage that writes nothing (it never
//! becomes an output path, as it once did).

mod common;

use std::process::{Command, Output};

/// Every native example (the web example is a cdylib for the browser).
const EXAMPLES: &[&str] = &[
    "activations",
    "check",
    "linear_classifier",
    "linear_regression",
    "losses",
    "matmul",
    #[cfg(all(feature = "download", feature = "checkpoints"))]
    "mnist",
    "neuron_backprop",
    "perceptron",
    #[cfg(feature = "checkpoints")]
    "predict",
    "retain_grad",
    "stacked_linear",
    "xor",
];

/// Runs `example` with `args` in an empty working directory; what it printed, and what it left
/// in that directory.
fn run(example: &str, args: &[&str]) -> (Output, Vec<String>) {
    // All of them in one build, whichever test asks first.
    common::examples(EXAMPLES);
    let binary = common::example(example);
    let cwd = tempfile::tempdir().unwrap();
    let output = Command::new(binary)
        .args(args)
        .current_dir(cwd.path())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let left: Vec<String> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    (output, left)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_example_prints_its_usage_with_help() {
    for example in EXAMPLES {
        let (output, left) = run(example, &["--help"]);
        let all = text(&output);
        assert!(output.status.success(), "{example} --help failed:\n{all}");
        assert!(all.contains("Usage:"), "{example} --help:\n{all}");
        assert!(left.is_empty(), "{example} --help wrote {left:?}");
    }
}

#[test]
fn an_unknown_flag_or_a_stray_argument_is_an_error_with_the_usage_and_writes_nothing() {
    for example in EXAMPLES {
        for args in [&["--bogus"][..], &["runs/x"], &["--bogus", "runs/x"]] {
            let (output, left) = run(example, args);
            let all = text(&output);
            // clap's usage error: exit status 2, the usage on stderr, before any work.
            assert_eq!(output.status.code(), Some(2), "{example} {args:?}:\n{all}");
            assert!(
                String::from_utf8_lossy(&output.stderr).contains("Usage:"),
                "{example} {args:?}:\n{all}"
            );
            assert!(!all.contains("panicked"), "{example} {args:?}:\n{all}");
            assert!(left.is_empty(), "{example} {args:?} wrote {left:?}");
        }
    }
}

/// The flags the issue found taken for a path are flags: `linear_classifier` reads MNIST from
/// `--data-dir`, and a directory without it is an error naming it (and nothing is written into
/// the working directory, even with `--no-download`).
#[test]
fn linear_classifier_takes_data_dir_and_no_download_as_flags() {
    let empty = tempfile::tempdir().unwrap();
    let data = empty.path().to_str().unwrap();
    let (output, left) = run(
        "linear_classifier",
        &["--data-dir", data, "--no-download", "--out", "out"],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains(data) && all.contains("--no-download"), "{all}");
    assert!(left.is_empty(), "wrote {left:?}");
}

/// matmul takes its three sizes, or none.
#[test]
fn matmul_takes_three_sizes_or_none() {
    for args in [
        &["7"][..],
        &["7", "5"],
        &["7", "5", "3", "2"],
        &["7", "x", "3"],
    ] {
        let (output, _) = run("matmul", args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}:\n{}",
            text(&output)
        );
    }
    let (output, _) = run("matmul", &["7", "5", "3"]);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("7x5x3 AB"), "{all}");
    // A form, a kernel and the number of timed runs.
    let (output, _) = run(
        "matmul",
        &[
            "36", "20", "24", "--form", "atb", "--kernel", "tiled", "--runs", "3",
        ],
    );
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(
        all.contains("36x20x24 AtB with the Tiled kernel: median of 3 runs"),
        "{all}"
    );
    for bad in [
        &["--form", "ba"][..],
        &["--kernel", "fast"],
        &["--runs", "0"],
    ] {
        let (output, _) = run("matmul", bad);
        assert_eq!(output.status.code(), Some(2), "{bad:?}:\n{}", text(&output));
    }
}

/// The kernels check runs natively and says how it went; every case passes here.
#[test]
fn check_runs_the_kernels_check_and_passes_here() {
    let (output, _) = run("check", &[]);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains(" 0 failed"), "{all}");
    assert!(all.contains("matmul/Tiled"), "{all}");
}
