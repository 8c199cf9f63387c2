//! The element types of the engine's buffers, on the lowest floor: errors name them too.

/// The element type of a tensor. Kernels take `F32` data; `U32` holds labels, indices and
/// counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer.
    U32,
}
