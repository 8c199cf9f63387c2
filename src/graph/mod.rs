//! The op graph: what a recording is made of. Each [`Op`] describes one kernel launch by the
//! tensors it reads and writes, before any kernel exists, and lowers itself into a prepared
//! kernel. Eager autograd lowers its ops at once; a capture keeps them, rewrites them with its
//! fusion rules and lowers the result once into a plan. Both build on this floor, which builds
//! on the kernels alone.

mod conv;
mod dropout;
mod matmul;
mod op;
mod pool;

pub(crate) use conv::ConvOp;
pub(crate) use dropout::DropoutOp;
pub(crate) use matmul::MatmulOp;
pub(crate) use op::{Access, Op, id};
pub(crate) use pool::PoolOp;
