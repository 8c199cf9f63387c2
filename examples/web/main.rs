//! The engine in the browser: a page that shows the adapter, trains the lecture MLP on MNIST
//! with a live chart, classifies a digit drawn on a canvas, and runs the kernels check
//! ([`wgsl_nn::conformance`]) on the browser's WebGPU.
//!
//! Built for `wasm32-unknown-unknown` and bound to JavaScript by `wasm-bindgen`;
//! `examples/web/run.sh` builds it and serves the page (see the README). On other targets
//! this example is empty.

#[cfg(target_arch = "wasm32")]
mod app;
