//! The run directory's policy: which checkpoint `--resume` means, refusing to start afresh
//! over an unfinished run, the command that resumes this one, and the history a checkpoint
//! carries so a resumed run reports all of it.

use std::path::{Path, PathBuf};

use wgsl_nn::nn::{CheckpointFile, Model, Trainer};

use crate::flags::{Failure, bad_flag};
use crate::outputs;

/// The checkpoint `--resume` names: the file, or `checkpoint.safetensors` in a directory.
pub(crate) fn resume_path(given: &Path) -> Result<PathBuf, Failure> {
    let path = if given.is_dir() {
        given.join(outputs::CHECKPOINT)
    } else {
        given.to_path_buf()
    };
    if !path.is_file() {
        return Err(bad_flag(format!(
            "--resume {}: no checkpoint there (a run saves {} in its --out directory after \
             each epoch and on Ctrl-C)",
            given.display(),
            outputs::CHECKPOINT
        )));
    }
    Ok(path)
}

/// Refuses to start afresh over an unfinished run's checkpoint, which would be replaced: one
/// that stopped part-way, or that finished training but whose outputs were never written (its
/// model file is missing or older than the checkpoint).
pub(crate) fn check_unfinished(out: &Path) -> Result<(), Failure> {
    let path = out.join(outputs::CHECKPOINT);
    let Some(position) = CheckpointFile::read(&path)
        .ok()
        .and_then(|file| file.training_position())
    else {
        return Ok(()); // none, or unreadable: nothing worth keeping
    };
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let outputs_written = match (modified(&out.join(outputs::MODEL)), modified(&path)) {
        (Some(model), Some(checkpoint)) => model >= checkpoint,
        _ => false,
    };
    if !position.finished() || !outputs_written {
        return Err(bad_flag(format!(
            "{} holds an unfinished run (epoch {} of {} done{}): continue it with --resume {}, \
             start afresh with --restart, or choose another --out",
            out.display(),
            position.epoch,
            position.epochs,
            if position.finished() {
                ", outputs not written"
            } else {
                ""
            },
            out.display()
        )));
    }
    Ok(())
}

/// The command that resumes this run from `checkpoint`: the same flags, plus `--resume`.
pub(crate) fn resume_command(checkpoint: &Path) -> String {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--resume") {
        args.drain(i..(i + 2).min(args.len()));
    }
    args.retain(|a| !a.starts_with("--resume=") && a != "--restart");
    args.extend(["--resume".into(), checkpoint.display().to_string()]);
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect();
    format!(
        "cargo run --release --example mnist -- {}",
        quoted.join(" ")
    )
}

/// The run's history so far, kept in the checkpoint so a resumed run reports all of it.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct History {
    pub(crate) train_loss: Vec<f32>,
    /// After each epoch (empty with --no-epoch-eval).
    #[serde(default)]
    pub(crate) test_accuracy: Vec<f32>,
    pub(crate) seconds: Vec<f64>,
}

pub(crate) const HISTORY_KEY: &str = "mnist.history";

pub(crate) fn save_checkpoint<M: Model>(
    trainer: &Trainer<M>,
    path: &Path,
    history: &History,
) -> Result<(), Failure> {
    let history = serde_json::to_string(history)?;
    trainer.save_state(path, [(HISTORY_KEY.to_string(), history)])?;
    Ok(())
}
