//! int8 inference kernels: u8 × i8 GEMM with i32 accumulation ([`gemm`]) and the statically
//! quantized convolution built on it ([`conv`]).
//!
//! Activations are asymmetric per tensor in 8 bits (u8 values 0..=255; 7 bits for older
//! files), weights symmetric i8 per output channel. The scalar, AVX2 and AVX-512 VNNI kernels
//! compute the same, exact integers (see [`gemm`]).

pub mod conv;
pub mod gemm;

pub use conv::QConv2d;
pub use gemm::{
    qgemm, quantize_one, quantize_rows, QEpilogue, QPackedB, QRows, ACT_MAX, ACT_MAX_7BIT,
    WEIGHT_MAX,
};

#[cfg(test)]
mod tests;
