//! int8 inference kernels: u8 × i8 GEMM with i32 accumulation ([`gemm`]) and the statically
//! quantized convolution built on it ([`conv`]).
//!
//! Activations are asymmetric per tensor in 7 bits (u8 values 0..=127), weights symmetric i8
//! per output channel, so that AVX2 without VNNI never saturates (see [`gemm`]). The scalar and
//! AVX2 kernels compute the same integers.

pub mod conv;
pub mod gemm;

pub use conv::QConv2d;
pub use gemm::{
    qgemm, quantize_one, quantize_rows, QEpilogue, QPackedB, QRows, ACT_MAX, WEIGHT_MAX,
};

#[cfg(test)]
mod tests;
