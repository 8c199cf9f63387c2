//! The CPU oracle: plain, obviously correct loops with f64 accumulation, one function per GPU
//! op and with the same name. Tests compare the GPU against these; nothing here shares code
//! with the GPU path.

mod matmul;

pub use matmul::matmul;
