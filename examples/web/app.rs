//! What the page calls: one [`App`] per page, each method a promise to JavaScript. Nothing
//! here blocks the browser's thread; training runs a slice of steps per call, so the page
//! draws between slices.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use wasm_bindgen::prelude::*;
use wgsl_nn::Device;
use wgsl_nn::conformance::{self, Outcome};
use wgsl_nn::data::digit;
use wgsl_nn::data::gpu::GpuDataset;
use wgsl_nn::data::mnist::{CLASSES, LoadOptions, Mnist, PIXELS};
use wgsl_nn::nn::{
    Evaluator, Mlp, MlpConfig, Model, Sequential, SequentialConfig, Trainer, TrainerConfig,
};
use wgsl_nn::optim::OptimizerConfig;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn js_error(error: impl std::fmt::Display) -> JsError {
    JsError::new(&error.to_string())
}

/// The page's engine: the device, the data once loaded, and the run in progress.
#[wasm_bindgen]
pub struct App {
    device: Device,
    state: Rc<RefCell<State>>,
}

#[derive(Default)]
struct State {
    data: Option<Mnist>,
    run: Option<Run>,
}

/// One training run: the trainer (of the model the page chose), the test-set evaluator and
/// what has been reported.
struct Run {
    trainer: Trainer<Box<dyn Model>>,
    evaluator: Evaluator,
    epochs: usize,
    test_accuracy: Option<f32>,
}

/// A JSON value as the string JavaScript parses.
fn to_js(value: serde_json::Value) -> String {
    value.to_string()
}

#[wasm_bindgen]
impl App {
    /// Opens the browser's WebGPU adapter and device.
    pub async fn create() -> Result<App, JsError> {
        let device = Device::new_async().await.map_err(js_error)?;
        Ok(App {
            device,
            state: Rc::default(),
        })
    }

    /// The adapter and the limits that decide which kernels run, as JSON.
    pub fn adapter(&self) -> String {
        let summary = self.device.adapter();
        let limits = self.device.limits();
        to_js(json!({
            "name": summary.name,
            "backend": format!("{:?}", summary.backend),
            "device_type": format!("{:?}", summary.device_type),
            "driver": summary.driver,
            "subgroup_min_size": self.device.subgroup_min_size(),
            "max_storage_buffers_per_shader_stage": limits.max_storage_buffers_per_shader_stage,
            "max_compute_invocations_per_workgroup": limits.max_compute_invocations_per_workgroup,
            "max_compute_workgroup_size_x": limits.max_compute_workgroup_size_x,
            "max_storage_buffer_binding_size": limits.max_storage_buffer_binding_size,
            "max_buffer_size": limits.max_buffer_size,
            "max_texture_dimension_2d": limits.max_texture_dimension_2d,
        }))
    }

    /// Validates the four MNIST files (raw or gzip, in the order training images, training
    /// labels, test images, test labels) and keeps them. The checksums are checked too.
    pub fn load_mnist(
        &self,
        train_images: &[u8],
        train_labels: &[u8],
        test_images: &[u8],
        test_labels: &[u8],
    ) -> Result<String, JsError> {
        let files = [train_images, train_labels, test_images, test_labels];
        let data = Mnist::from_bytes(files, LoadOptions::default()).map_err(js_error)?;
        let summary = json!({"train": data.train_len(), "test": data.test_len()});
        self.state.borrow_mut().data = Some(data);
        Ok(to_js(summary))
    }

    /// Starts a run: `model` is `mlp` (the lecture's 784-128-10) or `cnn` (the `mnist`
    /// example's LeNet-5-shaped CNN), `recipe` `lecture` (SGD, lr 0.001) or `adam` (Adam, lr
    /// 0.001), on the first `train_limit` training images (0: all) for `epochs` epochs. The
    /// data set is uploaded once per run; the step is captured on its first replay.
    pub fn start(
        &self,
        model: &str,
        recipe: &str,
        train_limit: usize,
        epochs: usize,
    ) -> Result<(), JsError> {
        let mut state = self.state.try_borrow_mut().map_err(js_error)?;
        let data = state
            .data
            .as_ref()
            .ok_or_else(|| js_error("load MNIST first"))?;
        let optimizer = match recipe {
            "lecture" => OptimizerConfig::sgd(0.001),
            "adam" => OptimizerConfig::adam(0.001),
            other => {
                return Err(js_error(format!(
                    "unknown recipe `{other}`: lecture or adam"
                )));
            }
        };
        if epochs == 0 {
            return Err(js_error("train at least one epoch"));
        }
        let train = match train_limit {
            0 => data.train_len(),
            n => n.min(data.train_len()),
        };
        let device = &self.device;
        let train_set = GpuDataset::new(
            device,
            &data.train_images[..train * PIXELS],
            &data.train_labels[..train],
            PIXELS,
            CLASSES,
        )
        .map_err(js_error)?;
        let test_set = GpuDataset::new(
            device,
            &data.test_images,
            &data.test_labels,
            PIXELS,
            CLASSES,
        )
        .map_err(js_error)?;
        let model: Box<dyn Model> = match model {
            "mlp" => Box::new(Mlp::new(device, MlpConfig::lecture()).map_err(js_error)?),
            "cnn" => {
                Box::new(Sequential::new(device, SequentialConfig::lenet()).map_err(js_error)?)
            }
            other => return Err(js_error(format!("unknown model `{other}`: mlp or cnn"))),
        };
        let config = TrainerConfig {
            optimizer,
            epochs,
            ..TrainerConfig::lecture()
        };
        let evaluator =
            Evaluator::new(&model, test_set, 1000, config.normalization).map_err(js_error)?;
        let trainer = Trainer::new(model, train_set, config).map_err(js_error)?;
        state.run = Some(Run {
            trainer,
            evaluator,
            epochs,
            test_accuracy: None,
        });
        Ok(())
    }

    /// Trains up to `steps` more steps (fewer at an epoch's end), then reads the running
    /// loss back: one host sync per call. At an epoch's end it also evaluates the test set.
    /// Returns JSON: epoch, step, steps per epoch, images trained in this call, the running
    /// mean loss, the test accuracy when an epoch ended, and whether the run is done.
    pub async fn train(&self, steps: usize) -> Result<String, JsError> {
        let mut run = self.take_run()?;
        let result = train_slice(&mut run, steps).await;
        self.state.borrow_mut().run = Some(run);
        result
    }

    /// The run, taken out of the state while a call awaits (no borrow is held across an
    /// await; a call made meanwhile is told the engine is busy).
    fn take_run(&self) -> Result<Run, JsError> {
        let mut state = self.state.try_borrow_mut().map_err(js_error)?;
        state.run.take().ok_or_else(|| {
            js_error("no trained model yet, or the engine is busy: start a run first")
        })
    }

    /// Classifies a drawing: `canvas` holds `width × height` ink values in [0, 1]. It is
    /// scaled and centred like MNIST, run through the model on the GPU, and the ten
    /// probabilities (softmax, also on the GPU) come back with the 28×28 image as JSON.
    pub async fn classify(
        &self,
        canvas: &[f32],
        width: usize,
        height: usize,
    ) -> Result<String, JsError> {
        let image = digit::mnist_like(canvas, width, height);
        let run = self.take_run()?;
        let result = self.classify_with(&run, image).await;
        self.state.borrow_mut().run = Some(run);
        result
    }

    async fn classify_with(&self, run: &Run, image: Vec<f32>) -> Result<String, JsError> {
        let normalization = run.trainer.config().normalization;
        let mut answers = wgsl_nn::nn::predict_async(run.trainer.model(), &image, normalization)
            .await
            .map_err(js_error)?;
        let probabilities = answers.pop().expect("one image, one answer");
        Ok(to_js(
            json!({"probabilities": probabilities, "image": image}),
        ))
    }

    /// Runs the kernels check, calling `on_row` with each row's JSON as it finishes; resolves
    /// to a JSON summary (rows, failed, skipped).
    pub async fn check_kernels(&self, on_row: js_sys::Function) -> String {
        let rows = conformance::run(&self.device, |row| {
            let (status, detail) = match &row.outcome {
                Outcome::Passed { worst_error } => ("pass", format!("{worst_error:.3e}")),
                Outcome::Failed(message) => ("fail", message.clone()),
                Outcome::Skipped(why) => ("skip", why.clone()),
            };
            let value = json!({
                "family": row.family, "case": row.case, "status": status, "detail": detail,
            });
            let _ = on_row.call1(&JsValue::NULL, &JsValue::from_str(&value.to_string()));
        })
        .await;
        let summary = conformance::Summary::of(&rows);
        to_js(json!({
            "rows": summary.rows,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "worst_error": summary.worst_error,
        }))
    }
}

/// Up to `steps` steps of `run`, then the running loss (and at an epoch's end the test
/// accuracy), as [`App::train`] returns them.
async fn train_slice(run: &mut Run, steps: usize) -> Result<String, JsError> {
    if run.trainer.epochs_done() >= run.epochs {
        return Ok(to_js(json!({"done": true})));
    }
    let batch = run.trainer.config().batch_size;
    let before = run.trainer.steps_done_in_epoch();
    let mut taken = 0;
    let ended = run
        .trainer
        .train_epoch_until_async(
            || {
                taken += 1;
                taken >= steps.max(1)
            },
            |_, _, _| {},
        )
        .await
        .map_err(js_error)?;
    let per_epoch = run.trainer.steps_per_epoch();
    let (done_steps, loss, epoch_ended) = match ended {
        Some(stats) => (per_epoch, stats.mean_loss, true),
        None => {
            let done = run.trainer.steps_done_in_epoch();
            let loss = run
                .trainer
                .mean_loss_so_far_async(done)
                .await
                .map_err(js_error)?;
            (done, loss, false)
        }
    };
    if epoch_ended {
        run.test_accuracy = Some(run.evaluator.accuracy_async().await.map_err(js_error)?);
    }
    let images = (done_steps - before) * batch;
    Ok(to_js(json!({
        "epoch": run.trainer.epochs_done() + usize::from(!epoch_ended),
        "epochs": run.epochs,
        "step": done_steps,
        "steps": per_epoch,
        "images": images,
        "loss": loss,
        "epoch_ended": epoch_ended,
        "test_accuracy": if epoch_ended { run.test_accuracy } else { None },
        "done": run.trainer.epochs_done() >= run.epochs,
        "dispatches_per_step": run.trainer.dispatches_per_step(),
    })))
}
