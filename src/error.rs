//! One error type for the whole crate.
//!
//! Every message names the thing that went wrong and, where there is one, the fix.

use std::fmt;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `wgsl-nn`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No adapter matched the request.
    #[error("could not choose a GPU adapter: {tried}")]
    NoAdapter {
        /// What was searched and what was found, for the message.
        tried: String,
    },

    /// An adapter was found, but it refused to create a device.
    #[error("the adapter `{adapter}` could not create a device: {reason}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// The driver's reason.
        reason: String,
    },

    /// Tensor shapes that do not fit together.
    #[error("shape mismatch in {op}: expected {expected}, found {found}")]
    Shape {
        /// The operation that checked the shapes.
        op: String,
        /// What the operation needed.
        expected: String,
        /// What it was given.
        found: String,
    },

    /// A tensor of the wrong element type.
    #[error("{op} needs a {expected:?} tensor, found {found:?}")]
    DType {
        /// The operation.
        op: String,
        /// The element type it takes.
        expected: crate::dtype::DType,
        /// The element type it was given.
        found: crate::dtype::DType,
    },

    /// A buffer (or a dispatch) larger than the device allows.
    #[error(
        "{what} needs {requested} but the device allows at most {limit} ({limit_name}); \
         split the work into smaller pieces or use an adapter with larger limits"
    )]
    TooLarge {
        /// What was being created.
        what: String,
        /// The size asked for, with its unit.
        requested: String,
        /// The device's limit, with its unit.
        limit: String,
        /// The name of the `wgpu::Limits` field.
        limit_name: &'static str,
    },

    /// A gradient was asked of an operation that has none.
    #[error(
        "`{op}` has no gradient: its derivative is 0 almost everywhere, so gradient descent \
         cannot train through it (the perceptron's reason for smooth activations); use sigmoid, \
         tanh or ReLU instead"
    )]
    NoGradient {
        /// The operation.
        op: String,
    },

    /// A second backward pass through a graph whose saved tensors the first one freed.
    #[error(
        "trying to backward through the graph a second time (through `{op}`): the first \
         backward() freed its saved tensors. Call backward_retain_graph() the first time if you \
         need to go through the graph again, or compute the forward pass again"
    )]
    GraphFreed {
        /// The op whose saved tensors are gone.
        op: String,
    },

    /// A backward pass through an op whose input was updated in place after the op read it.
    #[error(
        "input {input} of `{op}` was updated in place (by an optimiser step) after `{op}` read \
         it, so its gradient would use the new value: call backward() before step(), or compute \
         the forward pass again"
    )]
    ModifiedInPlace {
        /// The op that read the value.
        op: String,
        /// Which of its inputs changed (0-based).
        input: usize,
    },

    /// An argument outside the accepted range (an unknown backend name, a bad option).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The WGSL compiler or the API validation rejected something: a bug in a kernel or in
    /// the way it was launched.
    #[error("GPU validation error in {context}: {message}")]
    Validation {
        /// What was being done.
        context: String,
        /// wgpu's description.
        message: String,
    },

    /// The device ran out of memory.
    #[error("the GPU ran out of memory in {context}; use smaller batches or tensors")]
    OutOfMemory {
        /// What was being done.
        context: String,
    },

    /// The device was lost (driver reset, `destroy`), and every later operation on it fails.
    #[error("the GPU device was lost ({0}); create a new `Device`")]
    DeviceLost(String),

    /// A data file is missing, unreadable or not what it should be.
    #[error("{}: {problem}", path.display())]
    Data {
        /// The file (or directory).
        path: std::path::PathBuf,
        /// What is wrong with it, and what to do.
        problem: String,
    },

    /// Training diverged: the loss became non-finite, or grew far past its first value.
    #[error(
        "the training loss became {loss} in epoch {epoch}{reason}: the model diverged. Lower \
         the learning rate (to {suggested_lr}, a tenth of the base rate, say) or use a smaller batch"
    )]
    Diverged {
        /// The epoch (1-based).
        epoch: usize,
        /// The mean loss seen.
        loss: f32,
        /// What else is known, appended after the epoch (", more than 10 times the first
        /// step's …"); empty when the loss was simply not finite.
        reason: String,
        /// A tenth of the base learning rate (before any schedule).
        suggested_lr: f32,
    },

    /// Mapping a buffer for reading failed.
    #[error("reading a buffer back from the GPU failed: {0}")]
    Readback(String),
}

impl Error {
    /// A shape error, formatting both shapes with `Debug`.
    pub(crate) fn shape(op: &str, expected: impl fmt::Display, found: impl fmt::Display) -> Self {
        Error::Shape {
            op: op.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}

/// What wgpu reported, kept as plain data: `wgpu::Error` holds a source that is neither `Send`
/// nor `Sync` on the web, and the uncaptured-error handler has to move it across its closure.
#[derive(Clone, Debug)]
pub(crate) enum WgpuError {
    OutOfMemory,
    Validation(String),
}

impl From<wgpu::Error> for WgpuError {
    fn from(error: wgpu::Error) -> Self {
        match error {
            wgpu::Error::OutOfMemory { .. } => WgpuError::OutOfMemory,
            wgpu::Error::Validation { description, .. }
            | wgpu::Error::Internal { description, .. } => WgpuError::Validation(description),
        }
    }
}

impl WgpuError {
    /// The crate's error for this report, raised while doing `context`.
    pub(crate) fn into_error(self, context: &str) -> Error {
        match self {
            WgpuError::OutOfMemory => Error::OutOfMemory {
                context: context.to_string(),
            },
            WgpuError::Validation(message) => Error::Validation {
                context: context.to_string(),
                message,
            },
        }
    }
}
