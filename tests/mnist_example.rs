//! The `mnist` example as a user meets it: bad flags and a bad `--out` refused before any
//! work, Ctrl-C saving a checkpoint that resumes bit for bit, the outputs written as one set,
//! a diverging run replacing nothing, and the same run writing the same model file.
//!
//! Each test runs the example binary on a few hundred real MNIST images (`MNIST_DIR`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};
use wgsl_nn::nn::CheckpointFile;

/// The example binary, built once per test run (in the profile these tests run in).
fn example() -> PathBuf {
    common::example("mnist")
}

/// A quick run: 100 test images, and 640 training images unless `args` says otherwise.
fn small(args: &[&str]) -> Vec<String> {
    let mut all = Vec::new();
    if !args.contains(&"--test-limit") {
        all.extend(["--test-limit".to_string(), "100".to_string()]);
    }
    if !args.contains(&"--train-limit") {
        all.extend(["--train-limit".to_string(), "640".to_string()]);
    }
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

fn mnist(out: &Path, args: &[&str]) -> Output {
    let (dir, _) = wgsl_nn::data::mnist::resolve_data_dir(None);
    Command::new(example())
        .args(small(args))
        .arg("--out")
        .arg(out)
        .env("MNIST_DIR", dir)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts the run failed before training, with a message containing every one of `words`.
fn refused(output: &Output, words: &[&str]) -> String {
    let all = text(output);
    assert!(!output.status.success(), "should fail:\n{all}");
    assert!(
        !all.contains("epoch  1"),
        "failed only after training:\n{all}"
    );
    assert!(!all.contains("panicked"), "{all}");
    for word in words {
        assert!(all.contains(word), "expected {word:?} in:\n{all}");
    }
    all
}

fn sha(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

fn losses(out: &Path) -> serde_json::Value {
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    serde_json::json!([
        metrics["train_loss"],
        metrics["test_accuracy_per_epoch"],
        metrics["test_accuracy"],
        metrics["train_accuracy"]
    ])
}

/// The two output directories hold the same run: the same model file, byte for byte, and the
/// same losses and accuracies.
fn assert_same_run(a: &Path, b: &Path) {
    assert_eq!(
        sha(&a.join("model.safetensors")),
        sha(&b.join("model.safetensors"))
    );
    assert_eq!(losses(a), losses(b));
}

#[test]
fn bad_flags_are_refused_before_any_work_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    refused(
        &mnist(&out, &["--test-limit", "0"]),
        &["--test-limit 0", "no images to evaluate"],
    );
    refused(
        &mnist(&out, &["--train-limit", "0"]),
        &["--train-limit 0", "no images to train"],
    );
    refused(&mnist(&out, &["--epochs", "0"]), &["--epochs 0"]);
    refused(
        &mnist(&out, &["--optimizer", "momentum", "--momentum", "2"]),
        &["--momentum 2", "[0, 1)"],
    );
    refused(
        &mnist(&out, &["--hidden", "0"]),
        &["--hidden 0", "at least one unit"],
    );
    refused(&mnist(&out, &["--lr", "0"]), &["--lr 0", "positive"]);
    assert!(!out.exists(), "a refused run created its output directory");
}

#[test]
fn help_lists_every_trainable_activation_and_schedule() {
    let output = Command::new(example()).arg("--help").output().unwrap();
    let help = text(&output);
    // The possible values clap lists under --activation.
    let section = help.split("--activation <ACTIVATION>").nth(1).unwrap();
    let section = section.split("\n      --").next().unwrap();
    let values = section.split("[possible values: ").nth(1).unwrap();
    let values: Vec<&str> = values.split(']').next().unwrap().split(", ").collect();
    for activation in wgsl_nn::activation::Activation::ALL {
        let listed = values.contains(&activation.name());
        assert_eq!(
            listed,
            activation.has_gradient(),
            "{}:\n{help}",
            activation.name()
        );
    }
    for schedule in ["constant", "step", "cosine", "onecycle"] {
        assert!(help.contains(schedule), "{schedule}:\n{help}");
    }
}

#[test]
fn an_out_that_is_a_file_or_cannot_be_created_fails_before_training_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, b"mine").unwrap();
    refused(&mnist(&file, &[]), &["taken", "not a directory"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    let below_a_file = file.join("out");
    refused(&mnist(&below_a_file, &[]), &["taken", "--out"]);
}

#[test]
fn a_missing_data_directory_with_no_download_does_not_suggest_downloading() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(example())
        .args(["--no-download", "--data-dir"])
        .arg(dir.path().join("nowhere"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let all = refused(&output, &["--no-download", "nowhere"]);
    assert!(all.contains("drop --no-download"), "{all}");
}

#[test]
fn the_same_run_twice_writes_the_same_model_file_and_modes_follow_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut printed = Vec::new();
    for out in [&a, &b] {
        let output = mnist(out, &["--epochs", "2"]);
        assert!(output.status.success(), "{}", text(&output));
        printed.push(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    // The ten digits in one block of a dozen lines, not ~280.
    let block: Vec<&str> = printed[0]
        .lines()
        .skip_while(|l| !l.starts_with("the first 10 test digits"))
        .take_while(|l| !l.starts_with("wrote"))
        .collect();
    assert!((10..=15).contains(&block.len()), "{}", block.join("\n"));
    assert!(
        block.last().unwrap().contains(" / "),
        "{}",
        block.join("\n")
    );
    // Numbers as the user gave them, and a test accuracy per epoch.
    let json = std::fs::read_to_string(a.join("metrics.json")).unwrap();
    assert!(json.contains("\"lr\": 0.001,"), "{json}");
    let metrics: serde_json::Value = serde_json::from_str(&json).unwrap();
    let per_epoch = metrics["test_accuracy_per_epoch"].as_array().unwrap();
    assert_eq!(per_epoch.len(), 2, "{json}");
    assert_eq!(per_epoch[1], metrics["test_accuracy"], "{json}");
    assert_eq!(
        sha(&a.join("model.safetensors")),
        sha(&b.join("model.safetensors"))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A file std creates gets 0666 less the umask; ours must get the same.
        let reference = dir.path().join("reference");
        std::fs::write(&reference, b"").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for name in [
            "model.safetensors",
            "metrics.json",
            "loss.png",
            "predictions.png",
            "checkpoint.safetensors",
        ] {
            assert_eq!(mode(&a.join(name)), mode(&reference), "{name}");
        }
    }
}

#[test]
fn four_epochs_equal_two_epochs_resumed_for_two_more() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, resumed) = (dir.path().join("straight"), dir.path().join("resumed"));
    let adam = ["--optimizer", "adam", "--lr", "0.002"];
    let run = |out: &Path, extra: &[&str]| {
        let output = mnist(out, &[&adam[..], extra].concat());
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    };
    run(&straight, &["--epochs", "4"]);
    run(&resumed, &["--epochs", "2"]);
    let resumed_dir = resumed.to_str().unwrap();
    let shown = run(&resumed, &["--epochs", "4", "--resume", resumed_dir]);
    assert!(shown.contains("resumed from"), "{shown}");
    assert_same_run(&straight, &resumed);
}

#[test]
fn a_resume_with_another_activation_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = mnist(&out, &["--epochs", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let before = sha(&out.join("model.safetensors"));
    let output = mnist(
        &out,
        &[
            "--epochs",
            "2",
            "--activation",
            "tanh",
            "--resume",
            out.to_str().unwrap(),
        ],
    );
    refused(&output, &["activation relu", "activation tanh"]);
    assert_eq!(sha(&out.join("model.safetensors")), before);
}

#[test]
fn a_run_killed_before_its_outputs_were_written_is_finished_by_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    for out in [&whole, &killed] {
        let output = mnist(out, &["--epochs", "1"]);
        assert!(output.status.success(), "{}", text(&output));
    }
    // As if killed after the last epoch's checkpoint, before the outputs.
    for name in [
        "model.safetensors",
        "metrics.json",
        "loss.png",
        "predictions.png",
    ] {
        std::fs::remove_file(killed.join(name)).unwrap();
    }
    refused(
        &mnist(&killed, &["--epochs", "1"]),
        &["unfinished run", "outputs not written"],
    );
    let output = mnist(
        &killed,
        &["--epochs", "1", "--resume", killed.to_str().unwrap()],
    );
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("training was done"), "{all}");
    assert_same_run(&whole, &killed);
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_at_a_step_saves_a_checkpoint_and_the_resumed_run_matches_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, stopped) = (dir.path().join("straight"), dir.path().join("stopped"));
    // Three epochs of 50 steps: the interrupt lands in the second or at its end.
    let flags = ["--train-limit", "3200", "--epochs", "3"];
    let output = mnist(&straight, &flags);
    assert!(output.status.success(), "{}", text(&output));

    // A leftover of a killed run, which the next run must remove.
    std::fs::create_dir_all(&stopped).unwrap();
    std::fs::write(stopped.join(".wgsl-nn-killed.tmp"), b"partial").unwrap();
    let (data, _) = wgsl_nn::data::mnist::resolve_data_dir(None);
    let mut child = Command::new(example())
        .args(small(&flags))
        .arg("--out")
        .arg(&stopped)
        .env("MNIST_DIR", data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first epoch is done, in the middle of the second.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "ended early:\n{seen}"
        );
        seen.push_str(&line);
        if line.starts_with("epoch  1:") {
            break;
        }
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("resume with:"), "{seen}");
    assert!(
        seen.contains("stopped at epoch 2, step") || seen.contains("stopped after epoch 2"),
        "{seen}"
    );
    assert!(stopped.join("checkpoint.safetensors").is_file());
    assert!(
        !stopped.join(".wgsl-nn-killed.tmp").exists(),
        "stale temporary kept"
    );
    assert!(
        !stopped.join("model.safetensors").exists(),
        "an interrupted run wrote a model"
    );

    // Starting afresh over it is refused; resuming finishes the run on the same bits.
    refused(&mnist(&stopped, &flags), &["unfinished run", "--resume"]);
    let output = mnist(
        &stopped,
        &[&flags[..], &["--resume", stopped.to_str().unwrap()]].concat(),
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_same_run(&straight, &stopped);
}

#[test]
fn a_diverging_run_is_stopped_and_replaces_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = mnist(&out, &["--epochs", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let names = [
        "model.safetensors",
        "metrics.json",
        "loss.png",
        "predictions.png",
    ];
    let before: Vec<String> = names.iter().map(|n| sha(&out.join(n))).collect();
    let output = mnist(&out, &["--epochs", "2", "--lr", "100", "--restart"]);
    let all = text(&output);
    assert!(!output.status.success(), "{all}");
    assert!(all.contains("diverged") && all.contains("--lr 10"), "{all}");
    let after: Vec<String> = names.iter().map(|n| sha(&out.join(n))).collect();
    assert_eq!(before, after, "a diverged run replaced an output");
}

#[test]
fn flags_that_do_nothing_are_warned_of_and_the_batch_used_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = mnist(
        &out,
        &[
            "--train-limit",
            "100",
            "--batch-size",
            "500",
            "--momentum",
            "0.5",
            "--epochs",
            "1",
        ],
    );
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("warning: --momentum"), "{all}");
    assert!(all.contains("warning: --batch-size 500"), "{all}");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["config"]["batch_size"], 100);
    assert_eq!(metrics["config"]["requested_batch_size"], 500);
    let output = mnist(
        &out,
        &[
            "--preset",
            "best",
            "--lr",
            "0.5",
            "--epochs",
            "1",
            "--restart",
        ],
    );
    assert!(
        text(&output).contains("--preset best sets --lr"),
        "{}",
        text(&output)
    );
}

#[test]
fn profile_step_prints_each_dispatch_with_its_grid_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let output = mnist(dir.path(), &["--epochs", "1", "--profile-step"]);
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    let device = wgsl_nn::Device::new().unwrap();
    if device.timestamps() == wgsl_nn::TimestampSupport::None {
        assert!(all.contains("no timestamp queries"), "{all}");
        return;
    }
    let table = all
        .split("dispatch by dispatch")
        .nth(1)
        .unwrap_or_else(|| panic!("no profile in:\n{all}"));
    assert!(table.contains(" µs  "), "{all}");
    assert!(table.contains("workgroups of"), "{all}");
    assert!(table.contains("GPU time of the step"), "{all}");
}

#[test]
fn init_from_reads_the_architecture_from_the_file_and_refuses_a_flag_that_contradicts_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let trained = mnist(&first, &["--epochs", "1", "--hidden", "32"]);
    assert!(trained.status.success(), "{}", text(&trained));
    let accuracy = |output: &Output| -> String {
        text(output)
            .lines()
            .find_map(|l| l.strip_prefix("test accuracy: ").map(str::to_string))
            .unwrap_or_else(|| panic!("no accuracy in {}", text(output)))
    };
    // Each of the three files the run wrote evaluates to the run's accuracy, --hidden 32
    // read from the file.
    for file in [
        "model.safetensors",
        "model_torch.safetensors",
        "model_torch_sequential.safetensors",
    ] {
        let from = first.join(file);
        let out = dir.path().join(format!("eval-{file}"));
        let evaluated = mnist(
            &out,
            &["--init-from", from.to_str().unwrap(), "--epochs", "0"],
        );
        let all = text(&evaluated);
        assert!(evaluated.status.success(), "{all}");
        assert!(all.contains("model: [784, 32, 10]"), "{all}");
        assert!(
            !all.contains("epoch  1"),
            "--epochs 0 trains nothing: {all}"
        );
        assert_eq!(accuracy(&evaluated), accuracy(&trained), "{file}");
    }
    let from = first.join("model_torch.safetensors");
    let from = from.to_str().unwrap();
    refused(
        &mnist(
            &dir.path().join("c"),
            &["--init-from", from, "--hidden", "64"],
        ),
        &["--hidden 64", "784→32→10", "--hidden 32"],
    );
    refused(
        &mnist(
            &dir.path().join("d"),
            &["--init-from", from, "--resume", from],
        ),
        &["--init-from", "--resume"],
    );
    // Fine-tuning: an epoch from the file's weights.
    let tuned = mnist(
        &dir.path().join("e"),
        &["--init-from", from, "--epochs", "1"],
    );
    assert!(tuned.status.success(), "{}", text(&tuned));
    assert!(
        text(&tuned).contains("initialised from"),
        "{}",
        text(&tuned)
    );
}

#[test]
fn a_cnn_trains_resumes_bit_for_bit_and_writes_its_own_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, resumed) = (dir.path().join("straight"), dir.path().join("resumed"));
    // A small CNN keeps the test short on a CPU driver; --preset cnn sets the optimiser.
    let model = "conv(4,5,pad=2)-relu-maxpool(2)-conv(8,5)-relu-maxpool(2)-flatten-\
                 dropout(0.25)-linear(10)";
    let cnn = ["--model", model, "--optimizer", "adam", "--lr", "0.003"];
    let run = |out: &Path, extra: &[&str]| {
        let output = mnist(out, &[&cnn[..], &["--train-limit", "320"], extra].concat());
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    };
    // A run of the lecture's MLP first leaves its PyTorch files in the directory.
    let mlp = mnist(&resumed, &["--epochs", "1", "--train-limit", "64"]);
    assert!(mlp.status.success(), "{}", text(&mlp));
    assert!(resumed.join("model_torch.safetensors").exists());

    let shown = run(&straight, &["--epochs", "2"]);
    for expected in ["conv2d", "max pool", "dropout", "dispatches/step"] {
        assert!(shown.contains(expected), "{expected} in:\n{shown}");
    }
    run(&resumed, &["--epochs", "1", "--restart"]);
    let resumed_dir = resumed.to_str().unwrap();
    run(&resumed, &["--epochs", "2", "--resume", resumed_dir]);
    assert_same_run(&straight, &resumed);
    assert!(
        !resumed.join("model_torch.safetensors").exists(),
        "the MLP's state_dict must not pass for the CNN's"
    );
    // The CNN's own: nn.Sequential's module indices (conv 0 and 3, linear 8 after the
    // dropout at 7), the same bytes resumed or not.
    let torch = |dir: &Path| std::fs::read(dir.join("model_torch_sequential.safetensors")).unwrap();
    assert_eq!(
        torch(&straight),
        torch(&resumed),
        "the resumed run's state_dict"
    );
    let state_dict =
        CheckpointFile::read(&straight.join("model_torch_sequential.safetensors")).unwrap();
    let names: Vec<&str> = state_dict.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "0.bias", "0.weight", "3.bias", "3.weight", "8.bias", "8.weight"
        ]
    );
    assert_eq!(state_dict.tensors["3.weight"].shape, [8, 4, 5, 5]);
    assert_eq!(state_dict.tensors["8.weight"].shape, [10, 200]);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(straight.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["config"]["layers"], model);

    // Bad layers are refused before any work, naming the layer and the fix.
    let out = dir.path().join("refused");
    refused(
        &mnist(&out, &["--model", "conv(4,5)-relu-linear(10)"]),
        &["--model", "layer 2", "flatten"],
    );
    refused(
        &mnist(&out, &["--model", "conv(4,5)-flatten-linear(7)"]),
        &["7 outputs", "linear(10)"],
    );
    refused(
        &mnist(&out, &["--model", "cnn", "--init-from", resumed_dir]),
        &["--init-from", "MLP"],
    );
}
