use crate::kernels::activation::Activation;
use crate::kernels::loss::Reduction;
use crate::kernels::matmul::MatmulForm;
use crate::kernels::optim::OptimizerConfig;

use super::{
    ActivationParams, OptimizerState, activation_backward, activation_forward, matmul,
    optimizer_step, softmax_cross_entropy, sum_columns,
};

/// One layer of the CPU oracle's MLP: weight `[in, out]` and bias `[out]`, row-major.
#[derive(Clone, Debug)]
pub struct CpuLinear {
    /// `[in, out]`.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
    /// Inputs.
    pub inputs: usize,
    /// Outputs.
    pub outputs: usize,
}

/// One training step of the same graph the device runs (linear layers with the activation
/// between them, softmax cross-entropy, the optimiser), built from the oracle's ops. Returns
/// the batch's mean loss. `states` holds one optimiser state per parameter, weight then bias
/// per layer.
pub fn mlp_train_step(
    layers: &mut [CpuLinear],
    activation: Activation,
    x: &[f32],
    labels: &[u32],
    optimizer: &OptimizerConfig,
    states: &mut [OptimizerState],
) -> f64 {
    let rows = labels.len();
    let params = |features| ActivationParams {
        features,
        training: true,
        ..Default::default()
    };
    // Forward, keeping each layer's input and pre-activation.
    let mut inputs = vec![x.to_vec()];
    let mut pre = Vec::new();
    for (l, layer) in layers.iter().enumerate() {
        let z = matmul(
            inputs.last().unwrap(),
            &layer.weight,
            Some(&layer.bias),
            MatmulForm::AB,
            rows,
            layer.inputs,
            layer.outputs,
        );
        if l + 1 < layers.len() {
            inputs.push(activation_forward(activation, &z, &params(layer.outputs)));
        }
        pre.push(z);
    }
    let classes = layers.last().unwrap().outputs;
    let (loss, mut dz) =
        softmax_cross_entropy(pre.last().unwrap(), labels, classes, None, Reduction::Mean);
    // Backward, then the update, layer by layer from the top (as the device orders it).
    let mut grads = vec![(Vec::new(), Vec::new()); layers.len()];
    for l in (0..layers.len()).rev() {
        let layer = &layers[l];
        let weight_grad = matmul(
            &inputs[l],
            &dz,
            None,
            MatmulForm::AtB,
            layer.inputs,
            rows,
            layer.outputs,
        );
        let bias_grad = sum_columns(&dz, layer.outputs);
        if l > 0 {
            let da = matmul(
                &dz,
                &layer.weight,
                None,
                MatmulForm::ABt,
                rows,
                layer.outputs,
                layer.inputs,
            );
            dz = activation_backward(activation, &pre[l - 1], &da, &params(layer.inputs))
                .expect("a trainable activation");
        }
        grads[l] = (weight_grad, bias_grad);
    }
    for (l, (weight_grad, bias_grad)) in grads.iter().enumerate() {
        optimizer_step(
            optimizer,
            &mut layers[l].weight,
            weight_grad,
            &mut states[2 * l],
        );
        optimizer_step(
            optimizer,
            &mut layers[l].bias,
            bias_grad,
            &mut states[2 * l + 1],
        );
    }
    loss
}
