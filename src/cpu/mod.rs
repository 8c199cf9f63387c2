//! The CPU oracle: plain, obviously correct loops with f64 accumulation, one function per GPU
//! op and with the same name. Tests compare the GPU against these; nothing here shares code
//! with the GPU path.

mod activation;
pub mod conv;
pub mod dropout;
mod elementwise;
mod loss;
mod matmul;
mod metrics;
mod mlp;
mod optim;
pub mod pool;
mod reduce;
pub mod tolerance;

pub use activation::{
    ActivationParams, activation_backward, activation_derivative, activation_forward,
    activation_value, pcg_hash, prelu_slope_grad, rrelu_slope,
};
pub use elementwise::{add, add_scalar, axpy, fill_scalar, mul, mul_scalar, scale, sub};
pub use loss::{pointwise_loss, softmax, softmax_backward, softmax_cross_entropy};
pub use matmul::matmul;
pub use metrics::{argmax, count_correct};
pub use mlp::{CpuLinear, mlp_train_step};
pub use optim::{OptimizerState, optimizer_step};
pub use reduce::{sum, sum_columns, sum_rows};
