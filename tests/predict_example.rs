//! The `predict` example: PNG and JPEG files of any size and colour, made MNIST-like, get the
//! labels the model gives the raw MNIST digits they were made from; every bad input gets its
//! message while the rest are answered.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{fresh_gpu, mnist};
use image::{GrayImage, Luma, Rgb, RgbImage};
use wgsl_nn::data::gpu::Normalization;
use wgsl_nn::data::mnist::{PIXELS, SIDE};
use wgsl_nn::nn::{Mlp, MlpConfig, Trainer, TrainerConfig, save_checkpoint};
use wgsl_nn::optim::OptimizerConfig;

fn predict(args: &[&Path], json: bool) -> Output {
    let mut command = Command::new(common::example("predict"));
    if json {
        command.arg("--json");
    }
    command
        .args(args)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr)
}

/// Test digit `i` as white ink on black (as MNIST stores it), 28×28.
fn digit(i: usize) -> GrayImage {
    let pixels = &mnist().test_images[i * PIXELS..(i + 1) * PIXELS];
    GrayImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
        Luma([pixels[y as usize * SIDE + x as usize]])
    })
}

/// Dark ink on light paper, three times larger, placed off-centre on a 120×100 RGB page.
fn on_paper(i: usize) -> RgbImage {
    let source = digit(i);
    RgbImage::from_fn(120, 100, |x, y| {
        let (sx, sy) = (x.wrapping_sub(10) / 3, y.wrapping_sub(5) / 3);
        let ink = if sx < SIDE as u32 && sy < SIDE as u32 {
            source.get_pixel(sx, sy).0[0]
        } else {
            0
        };
        let level = 240 - (u16::from(ink) * 200 / 255) as u8;
        Rgb([level, level, level.saturating_sub(10)])
    })
}

#[test]
fn images_of_test_digits_get_the_models_labels_and_bad_inputs_their_messages() {
    let device = fresh_gpu();
    let model = Mlp::new(&device, MlpConfig::lecture()).unwrap();
    let config = TrainerConfig {
        optimizer: OptimizerConfig::adam(2e-3),
        ..TrainerConfig::lecture()
    };
    let mut trainer = Trainer::new(model, common::dataset(&device, true, 6400), config).unwrap();
    trainer.train_epoch(|_, _, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model_file = dir.path().join("model.safetensors");
    save_checkpoint(
        trainer.model(),
        &model_file,
        [("activation".to_string(), "relu".to_string())],
    )
    .unwrap();

    // What the model says about the raw digits; kept where it is sure (an image remade from
    // a file is resampled, which may tip an unsure answer).
    let raw: Vec<f32> = mnist().test_images[..30 * PIXELS]
        .iter()
        .map(|&b| f32::from(b) / 255.0)
        .collect();
    let answers = trainer
        .model()
        .predict(&raw, Normalization::default())
        .unwrap();
    let sure: Vec<(usize, usize)> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let (best, &top) = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap();
            (top > 0.95).then_some((i, best))
        })
        .collect();
    assert!(
        sure.len() >= 10,
        "a trained model is sure of most digits: {sure:?}"
    );

    let mut files: Vec<(PathBuf, usize)> = Vec::new();
    for &(i, label) in &sure {
        let png = dir.path().join(format!("digit{i}.png"));
        digit(i).save(&png).unwrap();
        let paper = dir.path().join(format!("paper{i}.jpg"));
        on_paper(i).save(&paper).unwrap();
        files.push((png, label));
        files.push((paper, label));
    }
    let missing = dir.path().join("missing.png");
    let not_image = dir.path().join("notes.png");
    std::fs::write(&not_image, "not a picture").unwrap();
    let blank = dir.path().join("blank.png");
    GrayImage::from_pixel(40, 30, Luma([255]))
        .save(&blank)
        .unwrap();

    let mut args: Vec<&Path> = vec![&model_file];
    args.extend(files.iter().map(|(p, _)| p.as_path()));
    args.extend([missing.as_path(), &not_image, &blank]);

    let output = predict(&args, true);
    assert_eq!(
        output.status.code(),
        Some(1),
        "some inputs failed: {}",
        text(&output)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), files.len() + 3, "one line per file");
    for ((path, label), line) in files.iter().zip(&lines) {
        assert_eq!(line["file"], path.display().to_string());
        assert_eq!(line["digit"], *label, "{line}");
        let top3 = line["top3"].as_array().unwrap();
        assert_eq!(top3.len(), 3);
        let p: Vec<f64> = top3
            .iter()
            .map(|t| t["probability"].as_f64().unwrap())
            .collect();
        assert!(p[0] >= p[1] && p[1] >= p[2] && p.iter().sum::<f64>() <= 1.0 + 1e-6);
    }
    let errors: Vec<String> = lines[files.len()..]
        .iter()
        .map(|l| l["error"].as_str().unwrap().to_string())
        .collect();
    assert!(errors[0].contains("cannot read"), "{errors:?}");
    assert!(errors[1].contains("not a PNG or JPEG"), "{errors:?}");
    assert!(errors[2].contains("blank"), "{errors:?}");

    // Text: the digit and the three likeliest per file, the failures on stderr by name.
    let (first, label) = &files[0];
    let output = predict(&[model_file.as_path(), first, &missing], false);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(&format!("{}: {label}  ({label} ", first.display())),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.png: cannot read"));
    let output = predict(&[model_file.as_path(), first], false);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn a_model_file_of_the_wrong_kind_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("digit.png");
    digit(0).save(&image).unwrap();
    let not_model = dir.path().join("weights.safetensors");
    std::fs::write(&not_model, "plain text").unwrap();
    let output = predict(&[not_model.as_path(), &image], false);
    assert_eq!(output.status.code(), Some(2));
    let all = text(&output);
    assert!(
        all.contains("weights.safetensors") && all.contains("not a safetensors"),
        "{all}"
    );
    assert!(!all.contains("panicked"), "{all}");
}
