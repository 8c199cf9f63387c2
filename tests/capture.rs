//! Capture and replay: the lecture step's dispatch budget, fused plans against unfused ones
//! and against eager autograd (bit for bit), each rewrite rule on its own, the vector matmul
//! family against the CPU oracle, and the errors of a capture. The captured trainer against
//! the CPU oracle's MLP step is `tests/training.rs`.

mod common;

use common::{check_within, dataset, fresh_gpu, gamma, gpu, random_vec, rng};
use wgsl_nn::activation::Activation;
use wgsl_nn::autograd::{Var, VarOptimizer, cross_entropy};
use wgsl_nn::capture::{Fusion, Rule, capture};
use wgsl_nn::cpu;
use wgsl_nn::data::gpu::Normalization;
use wgsl_nn::loss::Reduction;
use wgsl_nn::matmul::{MatmulDims, MatmulForm, MatmulKernel, MatmulOptions, matmul};
use wgsl_nn::nn::{Evaluator, Mlp, MlpConfig, Model, Trainer, TrainerConfig};
use wgsl_nn::optim::OptimizerConfig;
use wgsl_nn::{Device, DeviceOptions, Error, Profile, Tensor};

fn trainer(device: &Device, config: MlpConfig, train: TrainerConfig, limit: usize) -> Trainer {
    let model = Mlp::new(device, config).unwrap();
    Trainer::new(model, dataset(device, true, limit), train).unwrap()
}

fn weights(t: &Trainer) -> Vec<Vec<f32>> {
    t.model()
        .parameters()
        .iter()
        .map(|(_, p)| p.to_vec().unwrap())
        .collect()
}

#[test]
fn the_lecture_step_is_four_dispatches_in_one_submit_with_no_host_sync() {
    // 784-128-10, ReLU, cross-entropy, SGD, batch 64: the four kernels the README lists.
    let device = fresh_gpu();
    let mut t = trainer(&device, MlpConfig::lecture(), TrainerConfig::lecture(), 640);
    t.begin_epoch().unwrap();
    t.step(0).unwrap(); // the first replay (Trainer::new captured the plans)
    let before = device.counters();
    for step in 1..6 {
        t.step(step).unwrap();
    }
    let five = device.counters() - before;
    eprintln!("fused lecture step: {:#?}", t.step_plan());
    assert_eq!(five.submits, 5, "one submit per step");
    assert_eq!(
        five.dispatches,
        5 * 4,
        "{} dispatches per step, the lecture step is 4",
        five.dispatches as f64 / 5.0
    );
    assert_eq!(five.host_syncs, 0);
    assert_eq!(five.bytes_read_back, 0);
    assert_eq!(five.pipelines_created, 0, "a replay builds no pipeline");
    assert_eq!(five.buffers_created, 0, "a replay allocates nothing");
    assert_eq!(t.dispatches_per_step(), Some(five.dispatches / 5));
}

#[test]
fn an_epoch_is_a_few_submits_of_many_steps_with_no_host_write_per_step_and_the_same_bits() {
    // The lecture run's epoch: 60,000 images, 938 steps.
    let device = fresh_gpu();
    let per_submit = |n| TrainerConfig {
        steps_per_submit: Some(n),
        ..TrainerConfig::lecture()
    };
    let mut one = trainer(&device, MlpConfig::lecture(), per_submit(1), 60_000);
    let before = device.counters();
    let one_stats = one.train_epoch(|_, _, _| {}).unwrap();
    let singly = device.counters() - before;
    // One per step, and the readbacks' copies (the first step's loss, the epoch's two sums).
    assert_eq!((one_stats.steps, singly.submits), (938, 938 + 3));

    let n = 16;
    let mut many = trainer(&device, MlpConfig::lecture(), per_submit(n), 60_000);
    let before = device.counters();
    let stats = many.train_epoch(|_, _, _| {}).unwrap();
    let epoch = device.counters() - before;
    eprintln!("an epoch at {n} steps per submit: {epoch:#?}");
    // The run's first step alone (its loss is the divergence yardstick), then 16 at a time,
    // and the three readbacks' copies.
    assert!(
        epoch.submits <= 938u64.div_ceil(n as u64) + 1 + 3,
        "{} submits",
        epoch.submits
    );
    // One write per submit (the rows of its steps), and the epoch's order and accumulators.
    assert!(
        epoch.host_writes <= epoch.submits + 3,
        "{} host writes in {} submits",
        epoch.host_writes,
        epoch.submits
    );
    assert_eq!(epoch.dispatches, 938 * 4, "the same four kernels per step");
    assert_eq!(
        epoch.buffers_created, 0,
        "the tables were sized when the plans were built"
    );
    assert_eq!(
        weights(&one),
        weights(&many),
        "the same bits as one step per submit"
    );
    assert_eq!(one_stats.mean_loss.to_bits(), stats.mean_loss.to_bits());
    assert_eq!(one_stats.running_accuracy, stats.running_accuracy);
}

#[test]
fn steps_per_submit_change_no_bit_with_rrelu_adam_a_schedule_and_accumulation() {
    // Every per-step input moves here: the batch offset, RReLU's key, Adam's bias corrections
    // and the one-cycle learning rate, with accumulation alternating two plans in a submit.
    let device = gpu();
    let mlp = MlpConfig {
        activation: Activation::RRELU,
        ..MlpConfig::lecture()
    };
    let run = |n: usize| {
        let config = TrainerConfig {
            optimizer: OptimizerConfig::adam(0.002),
            schedule: wgsl_nn::nn::Schedule::OneCycle,
            epochs: 2,
            accumulation: 2,
            steps_per_submit: Some(n),
            ..TrainerConfig::lecture()
        };
        let mut t = trainer(device, mlp.clone(), config, 700);
        let losses: Vec<u32> = (0..2)
            .map(|_| t.train_epoch(|_, _, _| {}).unwrap().mean_loss.to_bits())
            .collect();
        (weights(&t), losses)
    };
    let singly = run(1);
    for n in [3, 4, 64] {
        assert_eq!(run(n), singly, "{n} steps per submit");
    }
}

#[test]
fn the_gpu_profile_trains_and_evaluates_to_the_cpu_profile_s_bits() {
    // The same adapter under both profiles: other kernel families (the vector family for the
    // fused products instead of the broadcast one, Tiled for the evaluator's products), the
    // same fma chains.
    let open = |profile| {
        let options = DeviceOptions::from_env().unwrap().with_profile(profile);
        Device::with_options(&options).unwrap()
    };
    let run = |device: &Device| {
        let mut t = trainer(device, MlpConfig::lecture(), TrainerConfig::lecture(), 1280);
        let stats = t.train_epoch(|_, _, _| {}).unwrap();
        let mut evaluator = Evaluator::new(
            t.model(),
            dataset(device, false, 1000),
            500,
            Normalization::default(),
        )
        .unwrap();
        let accuracy = evaluator.accuracy().unwrap();
        (
            weights(&t),
            stats.mean_loss.to_bits(),
            accuracy,
            t.dispatches_per_step(),
        )
    };
    let (cpu, gpu) = (open(Profile::Cpu), open(Profile::Gpu));
    assert_eq!((cpu.profile(), gpu.profile()), (Profile::Cpu, Profile::Gpu));
    let (on_cpu, on_gpu) = (run(&cpu), run(&gpu));
    assert!(
        on_gpu.3.is_some_and(|d| d <= 6),
        "{:?} dispatches per step",
        on_gpu.3
    );
    assert_eq!(
        (on_cpu.0, on_cpu.1, on_cpu.2),
        (on_gpu.0, on_gpu.1, on_gpu.2),
        "weights, mean loss and accuracy"
    );
}

#[test]
fn under_the_gpu_profile_the_lecture_step_fills_a_gpu() {
    let options = DeviceOptions::from_env()
        .unwrap()
        .with_profile(Profile::Gpu);
    let device = Device::with_options(&options).unwrap();
    let mut t = trainer(&device, MlpConfig::lecture(), TrainerConfig::lecture(), 640);
    t.begin_epoch().unwrap();
    t.step(0).unwrap();
    let grids = t.step_grids().unwrap();
    for grid in &grids {
        eprintln!("{grid}");
    }
    assert!(grids.len() <= 6, "{} dispatches", grids.len());
    let invocations = |entry: &str| {
        grids
            .iter()
            .find(|g| g.entry_point == entry)
            .and_then(|g| g.invocations())
            .unwrap_or_else(|| panic!("no {entry} in {grids:#?}"))
    };
    // The first layer's forward (64×128 outputs) and weight gradient (784×128).
    assert!(invocations("matmul_staged_ab") >= 2048);
    assert!(invocations("matmul_staged_atb") >= 2048);
    // The head's per-row pass: at least one invocation per logit (64 rows × 10 classes).
    let head = invocations("head_rows_staged");
    assert!(
        head >= 640,
        "the head runs {head} invocations for 640 logits"
    );
    for grid in &grids {
        assert!(grid.workgroup_count() >= 8, "{grid}");
    }
}

/// Trains `steps` steps of `config` under `fusion` and returns the weights.
fn run(fusion: Fusion, mlp: MlpConfig, optimizer: OptimizerConfig, steps: usize) -> Vec<Vec<f32>> {
    let device = gpu();
    let config = TrainerConfig {
        fusion,
        optimizer,
        seed: 3,
        ..TrainerConfig::lecture()
    };
    let mut t = trainer(device, mlp, config, 64 * steps);
    t.begin_epoch().unwrap();
    for step in 0..steps {
        t.step(step).unwrap();
    }
    weights(&t)
}

#[test]
fn fused_plans_give_the_unfused_plans_bits() {
    // Every fused kernel runs the arithmetic of the ops it replaces in their order, so the
    // fused step, each rule alone, and no fusion at all end on identical weights.
    for (mlp, optimizer) in [
        (MlpConfig::lecture(), OptimizerConfig::sgd(0.05)),
        (
            MlpConfig {
                widths: vec![784, 64, 32, 10],
                activation: Activation::Tanh,
                seed: 1,
            },
            OptimizerConfig::adam(1e-3),
        ),
        (
            MlpConfig {
                widths: vec![784, 32, 10],
                activation: Activation::Sigmoid,
                seed: 2,
            },
            OptimizerConfig::momentum(0.05, 0.9),
        ),
    ] {
        let reference = run(Fusion::none(), mlp.clone(), optimizer, 6);
        let fused = run(Fusion::all(), mlp.clone(), optimizer, 6);
        assert_eq!(fused, reference, "{:?}: all rules vs none", mlp.widths);
        for rule in Rule::ALL {
            let with = run(
                Fusion::only(&[Rule::Simplify, rule]),
                mlp.clone(),
                optimizer,
                6,
            );
            assert_eq!(with, reference, "{:?}: rule {rule:?} alone", mlp.widths);
            let without = run(Fusion::without(rule), mlp.clone(), optimizer, 6);
            assert_eq!(without, reference, "{:?}: all but {rule:?}", mlp.widths);
        }
    }
}

#[test]
fn a_captured_step_and_an_eager_autograd_step_give_identical_weights() {
    // The same leaves, the same batch: once through eager autograd, once through a capture
    // replayed once. Fused kernels must not change a bit.
    let device = gpu();
    let data = dataset(device, true, 64);
    let batch = data.batch(64, Default::default()).unwrap();
    let init = Mlp::new(device, MlpConfig::lecture()).unwrap();
    let values: Vec<(Vec<f32>, wgsl_nn::Shape)> = init
        .parameters()
        .iter()
        .map(|(_, t)| (t.to_vec().unwrap(), t.shape().clone()))
        .collect();
    let leaves = || -> Vec<Var> {
        values
            .iter()
            .map(|(v, s)| Var::from_slice(device, v, s.clone(), true).unwrap())
            .collect()
    };
    let step = |p: &[Var], opt: &mut VarOptimizer| -> wgsl_nn::Result<Var> {
        batch.gather()?;
        let h = batch.input()?.linear(&p[0], Some(&p[1]))?.relu()?;
        let logits = h.linear(&p[2], Some(&p[3]))?;
        let loss = cross_entropy(&logits, &batch.labels()?, Reduction::Mean)?;
        opt.zero_grad()?;
        loss.backward()?;
        opt.step()?;
        Ok(loss)
    };
    let config = OptimizerConfig::sgd(0.1);
    let eager = leaves();
    let mut eager_opt = VarOptimizer::new(config, &eager.iter().collect::<Vec<_>>()).unwrap();
    let eager_loss = step(&eager, &mut eager_opt).unwrap().item().unwrap();

    let captured = leaves();
    let mut opt = VarOptimizer::new(config, &captured.iter().collect::<Vec<_>>()).unwrap();
    let (plan, loss) = capture(device, &Fusion::all(), || step(&captured, &mut opt)).unwrap();
    plan.replay().unwrap();
    for (a, b) in eager.iter().zip(&captured) {
        assert_eq!(a.to_vec().unwrap(), b.to_vec().unwrap());
    }
    // The fused head sums the loss terms in another fixed order: the loss agrees to rounding.
    let fused_loss = loss.item().unwrap();
    assert!(
        (fused_loss - eager_loss).abs() <= 1e-6 * eager_loss.abs(),
        "{fused_loss} vs {eager_loss}"
    );
}

#[test]
fn two_hidden_layers_with_gelu_train_through_the_capture() {
    let device = gpu();
    let mut t = trainer(
        device,
        MlpConfig {
            widths: vec![784, 64, 32, 10],
            activation: Activation::Gelu,
            seed: 6,
        },
        TrainerConfig {
            optimizer: OptimizerConfig::adam(1e-3),
            ..TrainerConfig::lecture()
        },
        1280,
    );
    let first = t.train_epoch(|_, _, _| {}).unwrap();
    let second = t.train_epoch(|_, _, _| {}).unwrap();
    eprintln!("GELU plan: {:#?}", t.step_plan());
    assert!(second.mean_loss < first.mean_loss, "{first:?} → {second:?}");
    assert!(t.dispatches_per_step().unwrap() > 0);
}

#[test]
fn reading_or_submitting_inside_a_capture_is_an_error() {
    let device = fresh_gpu();
    let x = Var::from_slice(&device, &[1.0, 2.0], [2], true).unwrap();
    let error = capture(&device, &Fusion::all(), || x.sum()?.item()).unwrap_err();
    assert!(
        matches!(error, Error::InvalidArgument(ref m) if m.contains("capturing")),
        "{error}"
    );
    let nested = capture(&device, &Fusion::all(), || {
        capture(&device, &Fusion::all(), || Ok(())).map(|_| ())
    })
    .unwrap_err();
    assert!(
        nested.to_string().contains("inside another capture"),
        "{nested}"
    );
    // After a failed capture the thread records eagerly again.
    assert_eq!(x.sum().unwrap().item().unwrap(), 3.0);
}

#[test]
fn a_plan_replays_with_new_values_in_the_same_buffers() {
    // TinyJit's contract: the plan reads its inputs' buffers when replayed.
    let device = gpu();
    let x = Var::from_slice(device, &[1.0, 2.0, 3.0], [3], false).unwrap();
    let w = Var::from_slice(device, &[2.0, 2.0, 2.0], [3], false).unwrap();
    let (plan, y) = capture(device, &Fusion::all(), || x.mul(&w)?.sum()).unwrap();
    plan.replay().unwrap();
    assert_eq!(y.item().unwrap(), 12.0);
    x.value().write(&[10.0, 20.0, 30.0]).unwrap();
    plan.replay().unwrap();
    assert_eq!(y.item().unwrap(), 120.0);
}

#[test]
fn aligned_matmuls_match_blocked_bits_and_the_cpu_oracle() {
    // Awkward but vec4-aligned shapes: one vec4, primes times four, edges of the 16-row block.
    let device = gpu();
    let shapes = [
        (1, 4, 4),
        (4, 4, 4),
        (17, 28, 12),
        (31, 44, 20),
        (64, 784, 128),
        (784, 64, 128),
        (1000, 128, 12),
    ];
    let broadcast = wgsl_nn::matmul::broadcast::available(device);
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        for (form, kernel) in MatmulForm::ALL
            .into_iter()
            .flat_map(|form| MatmulKernel::ALIGNED.map(|kernel| (form, kernel)))
        {
            if !kernel.supports(form, MatmulDims { m, k, n })
                || (kernel == MatmulKernel::Broadcast && !broadcast)
            {
                continue;
            }
            for (bias, activation) in [(false, Activation::Identity), (true, Activation::Tanh)] {
                if form != MatmulForm::AB && (bias || activation != Activation::Identity) {
                    continue;
                }
                let mut r = rng(40 + i as u64);
                let (a_host, b_host) = (random_vec(&mut r, m * k), random_vec(&mut r, k * n));
                let bias_host = random_vec(&mut r, n);
                let a_shape = if form.trans_a() { [k, m] } else { [m, k] };
                let b_shape = if form.trans_b() { [n, k] } else { [k, n] };
                let a = Tensor::from_slice(device, &a_host, a_shape).unwrap();
                let b = Tensor::from_slice(device, &b_host, b_shape).unwrap();
                let bias_t = Tensor::from_slice(device, &bias_host, [n]).unwrap();
                let options = MatmulOptions {
                    form,
                    kernel: Some(kernel),
                    bias: bias.then_some(&bias_t),
                    activation,
                    ..Default::default()
                };
                let got = matmul(&a, &b, &options).unwrap().to_vec().unwrap();
                let blocked = MatmulOptions {
                    kernel: Some(MatmulKernel::Blocked),
                    ..options
                };
                let same = matmul(&a, &b, &blocked).unwrap().to_vec().unwrap();
                assert_eq!(
                    got, same,
                    "{form:?} {m}×{k}×{n}: {kernel:?} and Blocked differ in bits"
                );
                let reference = cpu::matmul(
                    &a_host,
                    &b_host,
                    bias.then_some(&bias_host[..]),
                    form,
                    m,
                    k,
                    n,
                );
                let reference: Vec<f32> = if activation == Activation::Tanh {
                    reference.iter().map(|v| v.tanh()).collect()
                } else {
                    reference
                };
                // γ_{K+2}·Σ|a||b| (+ bias), and tanh's slope ≤ 1 does not grow it.
                let mags = cpu::matmul(
                    &a_host.iter().map(|v| v.abs()).collect::<Vec<_>>(),
                    &b_host.iter().map(|v| v.abs()).collect::<Vec<_>>(),
                    None,
                    form,
                    m,
                    k,
                    n,
                );
                let bound: Vec<f64> = mags
                    .iter()
                    .map(|&s| gamma(k + 2) * (f64::from(s) + 1.0) + 1e-6)
                    .collect();
                check_within(&got, &reference, &bound)
                    .unwrap_or_else(|e| panic!("{form:?} {m}×{k}×{n}: {e}"));
            }
        }
    }
}

const U: f64 = common::F32_UNIT_ROUNDOFF;

/// Captures and replays, under `fusion`, the backward pass of a linear classifier:
/// `cross_entropy(x·W + b, labels)` (mean) with x a leaf too. Returns the plan's steps, the
/// loss and the gradients of W, b and x.
fn classifier_grads(
    fusion: &Fusion,
    (x, w, b, labels): (&[f32], &[f32], &[f32], &[u32]),
    (rows, k, n): (usize, usize, usize),
) -> (Vec<String>, f32, [Vec<f32>; 3]) {
    let device = gpu();
    let xv = Var::from_slice(device, x, [rows, k], true).unwrap();
    let wv = Var::from_slice(device, w, [k, n], true).unwrap();
    let bv = Var::from_slice(device, b, [n], true).unwrap();
    let labels = wgsl_nn::loss::Labels::new(device, labels, n).unwrap();
    let (plan, loss) = capture(device, fusion, || {
        let logits = xv.linear(&wv, Some(&bv))?;
        let loss = cross_entropy(&logits, &labels, Reduction::Mean)?;
        loss.backward()?;
        Ok(loss)
    })
    .unwrap();
    plan.replay().unwrap();
    let grads = [&wv, &bv, &xv].map(|v| v.grad_vec().unwrap().unwrap());
    (plan.steps().to_vec(), loss.item().unwrap(), grads)
}

#[test]
fn the_head_runs_only_where_its_loops_stay_below_the_limit_and_matches_the_oracle() {
    // lavapipe stops an invocation's loops after 65535 iterations in all. The head has one
    // invocation per row looping over k (times the classes) and one per gradient element
    // looping over the rows: (2, 6000, 10) and (70000, 4, 10) would pass the limit there, so
    // they must run unfused; (1536, 8, 10) fuses, and its bias gradient must sum in the reduce
    // family's blocks of 1024 rows (the unfused plan's bits); (37, 7, 3) fuses with k·n = 21
    // weights, not a whole number of texels, so head_rows reads them from the buffer.
    let fuses = [true, false, false, true];
    for (i, &(rows, k, n)) in [(1536, 8, 10), (2, 6000, 10), (70_000, 4, 10), (37, 7, 3)]
        .iter()
        .enumerate()
    {
        let what = format!("{rows}×{k}·{k}×{n}");
        let mut r = rng(90 + i as u64);
        let x = random_vec(&mut r, rows * k);
        let w: Vec<f32> = random_vec(&mut r, k * n)
            .iter()
            .map(|v| v / k as f32)
            .collect();
        let b = random_vec(&mut r, n);
        let labels: Vec<u32> = (0..rows).map(|i| ((i * 7 + 3) % n) as u32).collect();
        let data = (&x[..], &w[..], &b[..], &labels[..]);
        let (steps, loss, fused) = classifier_grads(&Fusion::all(), data, (rows, k, n));
        let (_, _, unfused) = classifier_grads(&Fusion::none(), data, (rows, k, n));
        let headed = steps.iter().any(|s| s.starts_with("head"));
        assert_eq!(
            headed, fuses[i],
            "{what}: head fused = {headed}: {steps:#?}"
        );
        assert!(
            fused == unfused,
            "{what}: the fused plan's gradients differ in bits"
        );

        // The oracle, with bounds built up op by op: z within γ_{k+1}·(|x|·|W| + |b|) =: Δz;
        // softmax q within q·(2·max Δz + γₙ + 20u) (exp and log a few ulp each); the
        // gradients as sums of products of those.
        let z = cpu::matmul(&x, &w, Some(&b), MatmulForm::AB, rows, k, n);
        let abs = |v: &[f32]| v.iter().map(|e| e.abs()).collect::<Vec<f32>>();
        let z_mag = cpu::matmul(
            &abs(&x),
            &abs(&w),
            Some(&abs(&b)),
            MatmulForm::AB,
            rows,
            k,
            n,
        );
        let (ref_loss, dl) = cpu::softmax_cross_entropy(&z, &labels, n, None, Reduction::Mean);
        let q = cpu::softmax(&z, n, false);
        let mut dl_err = vec![0.0f64; rows * n];
        for row in 0..rows {
            let dz = (0..n)
                .map(|j| gamma(k + 1) * f64::from(z_mag[row * n + j]))
                .fold(0.0, f64::max);
            for j in 0..n {
                let qj = f64::from(q[row * n + j]);
                dl_err[row * n + j] = (qj * (2.0 * dz + gamma(n) + 20.0 * U) + U) / rows as f64;
            }
        }
        let loss_tol = 2.0
            * z_mag
                .iter()
                .map(|&m| gamma(k + 1) * f64::from(m))
                .fold(0.0, f64::max)
            + gamma(n)
            + 20.0 * U
            + gamma(rows) * ref_loss.abs();
        assert!(
            (f64::from(loss) - ref_loss).abs() <= loss_tol,
            "{what}: loss {loss} vs {ref_loss} (tol {loss_tol:e})"
        );
        // W: xᵀ·dl; b: column sums of dl; x: dl·Wᵀ. Each within γ·Σ|a||b| plus the
        // propagated dl error.
        let dl_abs = abs(&dl);
        let dl_err32: Vec<f32> = dl_err.iter().map(|&e| e as f32).collect();
        let checks = [
            ("W", MatmulForm::AtB, abs(&x), (k, rows, n), &fused[0]),
            (
                "x",
                MatmulForm::ABt,
                dl_abs.clone(),
                (rows, n, k),
                &fused[2],
            ),
        ];
        for (name, form, left_abs, (mm, kk, nn), got) in checks {
            let (left, right, right_abs) = match name {
                "W" => (x.clone(), dl.clone(), dl_abs.clone()),
                _ => (dl.clone(), w.clone(), abs(&w)),
            };
            let reference = cpu::matmul(&left, &right, None, form, mm, kk, nn);
            let scale = cpu::matmul(&left_abs, &right_abs, None, form, mm, kk, nn);
            let propagated = match name {
                "W" => cpu::matmul(&abs(&x), &dl_err32, None, form, mm, kk, nn),
                _ => cpu::matmul(&dl_err32, &abs(&w), None, form, mm, kk, nn),
            };
            let bound: Vec<f64> = scale
                .iter()
                .zip(&propagated)
                .map(|(&s, &p)| (gamma(kk + 2) + 2.0 * U) * f64::from(s) + 1.01 * f64::from(p))
                .collect();
            check_within(got, &reference, &bound).unwrap_or_else(|e| panic!("{what} d{name}: {e}"));
        }
        let db = cpu::sum_columns(&dl, n);
        let bound: Vec<f64> = (0..n)
            .map(|j| {
                (0..rows)
                    .map(|row| {
                        gamma(rows + 1) * f64::from(dl_abs[row * n + j]) + dl_err[row * n + j]
                    })
                    .sum::<f64>()
                    * 1.01
            })
            .collect();
        check_within(&fused[1], &db, &bound).unwrap_or_else(|e| panic!("{what} db: {e}"));
    }
}

#[test]
fn a_fused_bias_gradient_sums_like_the_reduce_family_or_is_not_fused() {
    // y = x·W + b, loss = Σ y ⊙ t: W's gradient xᵀ·t and b's the column sums of t. Rule
    // BiasGrad folds the column sums into the Aᵀ·B kernel; over more than 1024 rows the reduce
    // family sums blocks of 1024 rows and then the blocks, and the fused kernel must do the
    // same. Past one pass of rows (16384) it does not fuse at all.
    let device = gpu();
    for &(rows, fused_expected) in &[(1536usize, true), (20_000, false)] {
        let (k, n) = (4, 4);
        let mut r = rng(rows as u64);
        let x = random_vec(&mut r, rows * k);
        let t = random_vec(&mut r, rows * n);
        let run = |fusion: &Fusion| {
            let xv = Var::from_slice(device, &x, [rows, k], false).unwrap();
            let tv = Var::from_slice(device, &t, [rows, n], false).unwrap();
            let w = Var::from_slice(device, &[0.5; 16], [k, n], true).unwrap();
            let b = Var::from_slice(device, &[0.25; 4], [n], true).unwrap();
            let (plan, _) = capture(device, fusion, || {
                let loss = xv.linear(&w, Some(&b))?.mul(&tv)?.sum()?;
                loss.backward()?;
                Ok(loss)
            })
            .unwrap();
            plan.replay().unwrap();
            let grads = [&w, &b].map(|v| v.grad_vec().unwrap().unwrap());
            (plan.steps().to_vec(), grads)
        };
        let (steps, fused) = run(&Fusion::only(&[Rule::Simplify, Rule::BiasGrad]));
        let (_, unfused) = run(&Fusion::none());
        let folded = !steps.iter().any(|s| s.contains("column sums"));
        assert_eq!(folded, fused_expected, "{rows} rows: {steps:#?}");
        assert!(
            fused == unfused,
            "{rows} rows: the fused plan's gradients differ in bits"
        );
        let abs = |v: &[f32]| v.iter().map(|e| e.abs()).collect::<Vec<f32>>();
        let db = cpu::sum_columns(&t, n);
        let db_bound: Vec<f64> = cpu::sum_columns(&abs(&t), n)
            .iter()
            .map(|&s| (gamma(rows) + U) * f64::from(s))
            .collect();
        check_within(&fused[1], &db, &db_bound).unwrap_or_else(|e| panic!("{rows} db: {e}"));
        let dw = cpu::matmul(&x, &t, None, MatmulForm::AtB, k, rows, n);
        let dw_bound: Vec<f64> = cpu::matmul(&abs(&x), &abs(&t), None, MatmulForm::AtB, k, rows, n)
            .iter()
            .map(|&s| (gamma(rows + 2) + 2.0 * U) * f64::from(s))
            .collect();
        check_within(&fused[0], &dw, &dw_bound).unwrap_or_else(|e| panic!("{rows} dW: {e}"));
    }
}
