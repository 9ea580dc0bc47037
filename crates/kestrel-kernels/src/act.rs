//! Activations, applied in the kernels' epilogues, with one scalar and one AVX2 definition each.
//!
//! `exp` and `erf` use the same polynomials in both, so the two paths agree to rounding:
//! exp by Cephes' range reduction and degree-6 polynomial (relative error ~1e-7), erf by
//! Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), the approximation PyTorch's own
//! vectorised GELU also relies on.

/// The activations the model zoo uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Identity,
    Relu,
    Relu6,
    /// x · relu6(x + 3) / 6
    HardSwish,
    /// relu6(x + 3) / 6
    HardSigmoid,
    /// x · sigmoid(x)
    Silu,
    Sigmoid,
    /// x · Φ(x), the exact (erf) form, PyTorch's default.
    Gelu,
    /// LeCun's 1.7159 · tanh(2x/3) (LeNet-5).
    ScaledTanh,
    /// GELU's tanh approximation, `½x(1 + tanh(√(2/π)(x + 0.044715x³)))` (PyTorch's
    /// `gelu(approximate='tanh')`, the TensorFlow MaxViT's).
    GeluTanh,
    Tanh,
}

/// √(2/π), GELU's tanh-approximation constant.
const GELU_TANH_K: f32 = 0.797_884_6;
const GELU_TANH_C: f32 = 0.044_715;

/// tanh(u) = 1 − 2 / (e^{2u} + 1); exp's clamp makes the tails exact ±1.
#[inline(always)]
fn tanh_scalar(u: f32) -> f32 {
    1.0 - 2.0 / (exp_scalar(2.0 * u) + 1.0)
}

#[inline(always)]
pub fn exp_scalar(x: f32) -> f32 {
    let x = x.clamp(-88.376_26, 88.376_26);
    let fx = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - fx * 0.693_359_4 + fx * 2.121_944_4e-4;
    let mut y = 1.987_569_1e-4f32;
    y = y * r + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 5.000_000_1e-1;
    y = y * r * r + r + 1.0;
    y * f32::from_bits(((fx as i32 + 127) as u32) << 23)
}

const ERF_P: f32 = 0.327_591_1;
const ERF_A: [f32; 5] = [
    0.254_829_6,
    -0.284_496_74,
    1.421_413_8,
    -1.453_152_1,
    1.061_405_4,
];

#[inline(always)]
pub fn erf_scalar(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + ERF_P * a);
    let poly = ((((ERF_A[4] * t + ERF_A[3]) * t + ERF_A[2]) * t + ERF_A[1]) * t + ERF_A[0]) * t;
    let y = 1.0 - poly * exp_scalar(-a * a);
    y.copysign(x)
}

impl Act {
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::Identity => x,
            Act::Relu => x.max(0.0),
            Act::Relu6 => x.clamp(0.0, 6.0),
            Act::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0),
            Act::HardSigmoid => (x + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0),
            Act::Silu => x / (1.0 + exp_scalar(-x)),
            Act::Sigmoid => 1.0 / (1.0 + exp_scalar(-x)),
            Act::Gelu => 0.5 * x * (1.0 + erf_scalar(x * std::f32::consts::FRAC_1_SQRT_2)),
            // tanh(u) = 1 − 2 / (e^{2u} + 1), with u = 2x/3.
            Act::ScaledTanh => 1.7159 * (1.0 - 2.0 / (exp_scalar(x * (4.0 / 3.0)) + 1.0)),
            Act::GeluTanh => {
                0.5 * x * (1.0 + tanh_scalar(GELU_TANH_K * (x + GELU_TANH_C * x * x * x)))
            }
            Act::Tanh => tanh_scalar(x),
        }
    }

    /// `dy · act'(x)` for the piecewise-linear activations, SiLU, sigmoid and LeNet's scaled
    /// tanh, in place in `dy`
    /// (PyTorch's conventions at the kinks: the gradient of `hardtanh` is 1 strictly inside the
    /// range, `hardswish`'s is `x/3 + 1/2` on `[-3, 3]`). Returns false, leaving `dy` untouched,
    /// for the others.
    pub fn backward_slice(self, x: &[f32], dy: &mut [f32]) -> bool {
        assert_eq!(x.len(), dy.len(), "activation backward sizes");
        #[cfg(target_arch = "x86_64")]
        if matches!(self, Act::Silu | Act::Sigmoid | Act::ScaledTanh)
            && crate::Isa::detect() == crate::Isa::Avx2
        {
            // The exp-based derivatives do not auto-vectorise (scalar `floor` calls).
            // SAFETY: AVX2 and FMA were detected.
            let done = unsafe { avx2::backward_slice(self, x, dy) };
            return self.backward_scalar(&x[done..], &mut dy[done..]);
        }
        self.backward_scalar(x, dy)
    }

    fn backward_scalar(self, x: &[f32], dy: &mut [f32]) -> bool {
        let pairs = x.iter().zip(dy.iter_mut());
        match self {
            Act::Identity => {}
            Act::Relu => pairs.for_each(|(x, g)| *g = if *x > 0.0 { *g } else { 0.0 }),
            Act::Relu6 => pairs.for_each(|(x, g)| *g = if *x > 0.0 && *x < 6.0 { *g } else { 0.0 }),
            Act::HardSigmoid => pairs.for_each(|(x, g)| {
                *g = if *x > -3.0 && *x < 3.0 {
                    *g * (1.0 / 6.0)
                } else {
                    0.0
                }
            }),
            Act::HardSwish => pairs.for_each(|(x, g)| {
                *g = if *x < -3.0 {
                    0.0
                } else if *x <= 3.0 {
                    *g * (*x * (1.0 / 3.0) + 0.5)
                } else {
                    *g
                }
            }),
            Act::Silu => pairs.for_each(|(x, g)| {
                let s = 1.0 / (1.0 + exp_scalar(-*x));
                *g *= s * (1.0 + *x * (1.0 - s));
            }),
            Act::Sigmoid => pairs.for_each(|(x, g)| {
                let s = 1.0 / (1.0 + exp_scalar(-*x));
                *g *= s * (1.0 - s);
            }),
            // d/dx 1.7159·tanh(2x/3) = 1.7159 · 2/3 · (1 − tanh²(2x/3)).
            Act::ScaledTanh => pairs.for_each(|(x, g)| {
                let t = 1.0 - 2.0 / (exp_scalar(*x * (4.0 / 3.0)) + 1.0);
                *g *= 1.7159 * (2.0 / 3.0) * (1.0 - t * t);
            }),
            _ => return false,
        }
        true
    }

    /// [`Act::apply_slice`] across the compute threads, in chunks.
    pub fn apply_slice_parallel(self, xs: &mut [f32]) {
        for_chunks(xs, |_, part| self.apply_slice(part));
    }

    /// [`Act::backward_slice`] across the compute threads, in chunks; false as it is.
    pub fn backward_slice_parallel(self, x: &[f32], dy: &mut [f32]) -> bool {
        assert_eq!(x.len(), dy.len(), "activation backward sizes");
        if !self.has_backward() {
            return false;
        }
        for_chunks(dy, |start, part| {
            self.backward_slice(&x[start..start + part.len()], part);
        });
        true
    }

    /// Whether [`Act::backward_slice`] covers this activation.
    pub fn has_backward(self) -> bool {
        matches!(
            self,
            Act::Identity
                | Act::Relu
                | Act::Relu6
                | Act::HardSigmoid
                | Act::HardSwish
                | Act::Silu
                | Act::Sigmoid
                | Act::ScaledTanh
        )
    }

    /// Applies the activation to every element, in place, with the best ISA.
    pub fn apply_slice(self, xs: &mut [f32]) {
        if self == Act::Identity {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if crate::Isa::detect() == crate::Isa::Avx2 {
            // SAFETY: AVX2 and FMA were detected.
            unsafe { avx2::apply_slice(self, xs) };
            return;
        }
        for x in xs {
            *x = self.apply(*x);
        }
    }
}

/// Runs `f(start, &mut xs[start..end])` over chunks of `xs` on the compute threads.
/// `out[i] = out[i] + src[i]`, then ReLU when `relu` (NaN kept, as PyTorch's ReLU keeps it):
/// a residual add in one pass, across the compute threads.
pub fn add_then(out: &mut [f32], src: &[f32], relu: bool) {
    assert_eq!(out.len(), src.len(), "residual add sizes");
    for_chunks(out, |start, part| {
        let src = &src[start..start + part.len()];
        if relu {
            for (o, &s) in part.iter_mut().zip(src) {
                let v = *o + s;
                *o = if v > 0.0 || v.is_nan() { v } else { 0.0 };
            }
        } else {
            part.iter_mut().zip(src).for_each(|(o, &s)| *o += s);
        }
    });
}

fn for_chunks(xs: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    const CHUNK: usize = 1 << 15;
    let len = xs.len();
    let base = crate::SendPtr(xs.as_mut_ptr());
    crate::threads::parallel_for(len.div_ceil(CHUNK), |i| {
        let base = base;
        let (a, b) = (i * CHUNK, ((i + 1) * CHUNK).min(len));
        // SAFETY (disjoint writes): task i owns elements a..b.
        f(a, unsafe {
            std::slice::from_raw_parts_mut(base.0.add(a), b - a)
        });
    });
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{Act, ERF_A, ERF_P, GELU_TANH_C, GELU_TANH_K};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub fn exp(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-88.376_26)),
            _mm256_set1_ps(88.376_26),
        );
        let fx = _mm256_floor_ps(_mm256_fmadd_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
            _mm256_set1_ps(0.5),
        ));
        let r = _mm256_fmadd_ps(
            fx,
            _mm256_set1_ps(2.121_944_4e-4),
            _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693_359_4), x),
        );
        let mut y = _mm256_set1_ps(1.987_569_1e-4);
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.398_199_9e-3));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.333_452e-3));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.166_579_6e-2));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.666_666_5e-1));
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.000_000_1e-1));
        let r2 = _mm256_mul_ps(r, r);
        y = _mm256_add_ps(_mm256_fmadd_ps(y, r2, r), _mm256_set1_ps(1.0));
        let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(fx),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(e))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn erf(x: __m256) -> __m256 {
        let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
        let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
        let one = _mm256_set1_ps(1.0);
        let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(ERF_P), a, one));
        let mut p = _mm256_set1_ps(ERF_A[4]);
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A[3]));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A[2]));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A[1]));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A[0]));
        p = _mm256_mul_ps(p, t);
        let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
        let y = _mm256_fnmadd_ps(p, e, one);
        _mm256_or_ps(y, sign)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub fn apply(act: Act, x: __m256) -> __m256 {
        let zero = _mm256_setzero_ps();
        let six = _mm256_set1_ps(6.0);
        let one = _mm256_set1_ps(1.0);
        match act {
            Act::Identity => x,
            Act::Relu => _mm256_max_ps(x, zero),
            Act::Relu6 => _mm256_min_ps(_mm256_max_ps(x, zero), six),
            Act::HardSwish => {
                let g = _mm256_min_ps(
                    _mm256_max_ps(_mm256_add_ps(x, _mm256_set1_ps(3.0)), zero),
                    six,
                );
                _mm256_mul_ps(_mm256_mul_ps(x, g), _mm256_set1_ps(1.0 / 6.0))
            }
            Act::HardSigmoid => {
                let g = _mm256_min_ps(
                    _mm256_max_ps(_mm256_add_ps(x, _mm256_set1_ps(3.0)), zero),
                    six,
                );
                _mm256_mul_ps(g, _mm256_set1_ps(1.0 / 6.0))
            }
            Act::Silu => _mm256_div_ps(x, _mm256_add_ps(one, exp(_mm256_sub_ps(zero, x)))),
            Act::Sigmoid => _mm256_div_ps(one, _mm256_add_ps(one, exp(_mm256_sub_ps(zero, x)))),
            Act::ScaledTanh => {
                let e = exp(_mm256_mul_ps(x, _mm256_set1_ps(4.0 / 3.0)));
                let t = _mm256_sub_ps(
                    one,
                    _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
                );
                _mm256_mul_ps(t, _mm256_set1_ps(1.7159))
            }
            Act::Gelu => {
                let u = erf(_mm256_mul_ps(
                    x,
                    _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
                ));
                _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5), x), _mm256_add_ps(one, u))
            }
            Act::GeluTanh => {
                let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
                let u = _mm256_mul_ps(
                    _mm256_set1_ps(GELU_TANH_K),
                    _mm256_fmadd_ps(_mm256_set1_ps(GELU_TANH_C), x3, x),
                );
                let t = tanh(u);
                _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5), x), _mm256_add_ps(one, t))
            }
            Act::Tanh => tanh(x),
        }
    }

    /// tanh(u) = 1 − 2 / (e^{2u} + 1), as the scalar form.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn tanh(u: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let e = exp(_mm256_add_ps(u, u));
        _mm256_sub_ps(
            one,
            _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
        )
    }

    /// `dy · act'(x)` for SiLU, sigmoid and the scaled tanh over the whole 8-lane part of the
    /// slices; returns how many elements it did (the rest is the caller's).
    #[target_feature(enable = "avx2,fma")]
    pub fn backward_slice(act: Act, x: &[f32], dy: &mut [f32]) -> usize {
        let n = x.len().min(dy.len()) / 8 * 8;
        let one = _mm256_set1_ps(1.0);
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 ≤ n ≤ both lengths.
            unsafe {
                let v = _mm256_loadu_ps(x.as_ptr().add(i));
                let g = _mm256_loadu_ps(dy.as_ptr().add(i));
                let d = match act {
                    Act::Silu | Act::Sigmoid => {
                        let s = _mm256_div_ps(
                            one,
                            _mm256_add_ps(one, exp(_mm256_sub_ps(_mm256_setzero_ps(), v))),
                        );
                        let one_minus_s = _mm256_sub_ps(one, s);
                        if act == Act::Silu {
                            // s · (1 + x · (1 − s))
                            _mm256_mul_ps(s, _mm256_fmadd_ps(v, one_minus_s, one))
                        } else {
                            _mm256_mul_ps(s, one_minus_s)
                        }
                    }
                    _ => {
                        // 1.7159 · 2/3 · (1 − t²), t = tanh(2x/3) = 1 − 2 / (e^{4x/3} + 1)
                        let e = exp(_mm256_mul_ps(v, _mm256_set1_ps(4.0 / 3.0)));
                        let t = _mm256_sub_ps(
                            one,
                            _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
                        );
                        _mm256_mul_ps(
                            _mm256_fnmadd_ps(t, t, one),
                            _mm256_set1_ps(1.7159 * (2.0 / 3.0)),
                        )
                    }
                };
                _mm256_storeu_ps(dy.as_mut_ptr().add(i), _mm256_mul_ps(g, d));
            }
        }
        n
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn apply_slice(act: Act, xs: &mut [f32]) {
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: c has exactly 8 elements.
            unsafe {
                let v = _mm256_loadu_ps(c.as_ptr());
                _mm256_storeu_ps(c.as_mut_ptr(), apply(act, v));
            }
        }
        for x in chunks.into_remainder() {
            *x = act.apply(*x);
        }
    }
}

/// The AVX2 activations on 16 lanes: the same operations in the same order (every one
/// correctly rounded lane by lane), so each lane's bits are the AVX2 form's.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{Act, ERF_A, ERF_P, GELU_TANH_C, GELU_TANH_K};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn and(a: __m512, b: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_and_si512(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b),
        ))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn andnot(a: __m512, b: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_andnot_si512(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b),
        ))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn or(a: __m512, b: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b),
        ))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(_mm512_max_ps(x, splat(-88.376_26)), splat(88.376_26));
        let fx = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(
            _mm512_fmadd_ps(x, splat(std::f32::consts::LOG2_E), splat(0.5)),
        );
        let r = _mm512_fmadd_ps(
            fx,
            splat(2.121_944_4e-4),
            _mm512_fnmadd_ps(fx, splat(0.693_359_4), x),
        );
        let mut y = splat(1.987_569_1e-4);
        y = _mm512_fmadd_ps(y, r, splat(1.398_199_9e-3));
        y = _mm512_fmadd_ps(y, r, splat(8.333_452e-3));
        y = _mm512_fmadd_ps(y, r, splat(4.166_579_6e-2));
        y = _mm512_fmadd_ps(y, r, splat(1.666_666_5e-1));
        y = _mm512_fmadd_ps(y, r, splat(5.000_000_1e-1));
        let r2 = _mm512_mul_ps(r, r);
        y = _mm512_add_ps(_mm512_fmadd_ps(y, r2, r), splat(1.0));
        let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(fx),
            _mm512_set1_epi32(127),
        ));
        _mm512_mul_ps(y, _mm512_castsi512_ps(e))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn erf(x: __m512) -> __m512 {
        let sign = and(x, splat(-0.0));
        let a = andnot(splat(-0.0), x);
        let one = splat(1.0);
        let t = _mm512_div_ps(one, _mm512_fmadd_ps(splat(ERF_P), a, one));
        let mut p = splat(ERF_A[4]);
        p = _mm512_fmadd_ps(p, t, splat(ERF_A[3]));
        p = _mm512_fmadd_ps(p, t, splat(ERF_A[2]));
        p = _mm512_fmadd_ps(p, t, splat(ERF_A[1]));
        p = _mm512_fmadd_ps(p, t, splat(ERF_A[0]));
        p = _mm512_mul_ps(p, t);
        let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a)));
        let y = _mm512_fnmadd_ps(p, e, one);
        or(y, sign)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn tanh(u: __m512) -> __m512 {
        let one = splat(1.0);
        let e = exp(_mm512_add_ps(u, u));
        _mm512_sub_ps(one, _mm512_div_ps(splat(2.0), _mm512_add_ps(e, one)))
    }

    /// [`apply`] with the cheap activations in line (the whole of `apply` is too large for
    /// the compiler to inline into a kernel's store loop, and an out-of-line call passes the
    /// register through memory).
    #[inline(always)]
    pub unsafe fn apply_fast(act: Act, x: __m512) -> __m512 {
        match act {
            Act::Identity => x,
            Act::Relu => _mm512_max_ps(x, _mm512_setzero_ps()),
            Act::Relu6 => _mm512_min_ps(_mm512_max_ps(x, _mm512_setzero_ps()), _mm512_set1_ps(6.0)),
            _ => apply(act, x),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn apply(act: Act, x: __m512) -> __m512 {
        let zero = _mm512_setzero_ps();
        let six = splat(6.0);
        let one = splat(1.0);
        match act {
            Act::Identity => x,
            Act::Relu => _mm512_max_ps(x, zero),
            Act::Relu6 => _mm512_min_ps(_mm512_max_ps(x, zero), six),
            Act::HardSwish => {
                let g = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(x, splat(3.0)), zero), six);
                _mm512_mul_ps(_mm512_mul_ps(x, g), splat(1.0 / 6.0))
            }
            Act::HardSigmoid => {
                let g = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(x, splat(3.0)), zero), six);
                _mm512_mul_ps(g, splat(1.0 / 6.0))
            }
            Act::Silu => _mm512_div_ps(x, _mm512_add_ps(one, exp(_mm512_sub_ps(zero, x)))),
            Act::Sigmoid => _mm512_div_ps(one, _mm512_add_ps(one, exp(_mm512_sub_ps(zero, x)))),
            Act::ScaledTanh => {
                let e = exp(_mm512_mul_ps(x, splat(4.0 / 3.0)));
                let t = _mm512_sub_ps(one, _mm512_div_ps(splat(2.0), _mm512_add_ps(e, one)));
                _mm512_mul_ps(t, splat(1.7159))
            }
            Act::Gelu => {
                let u = erf(_mm512_mul_ps(x, splat(std::f32::consts::FRAC_1_SQRT_2)));
                _mm512_mul_ps(_mm512_mul_ps(splat(0.5), x), _mm512_add_ps(one, u))
            }
            Act::GeluTanh => {
                let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
                let u = _mm512_mul_ps(
                    splat(GELU_TANH_K),
                    _mm512_fmadd_ps(splat(GELU_TANH_C), x3, x),
                );
                let t = tanh(u);
                _mm512_mul_ps(_mm512_mul_ps(splat(0.5), x), _mm512_add_ps(one, t))
            }
            Act::Tanh => tanh(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every activation's 16-lane form gives its 8-lane form's bits, on ordinary values, the
    /// tails where exp clamps, zeros of both signs and NaN.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_activations_match_avx2_bit_for_bit() {
        use std::arch::x86_64::*;
        if !crate::test_util::avx512_and_avx2() {
            return;
        }
        let mut xs: Vec<f32> = (0..4000).map(|i| (i as f32 - 2000.0) * 0.0137).collect();
        xs.extend([
            0.0,
            -0.0,
            88.0,
            -88.0,
            100.0,
            -100.0,
            1e-30,
            -1e-30,
            f32::NAN,
            3.0,
            -3.0,
            6.0,
        ]);
        while xs.len() % 16 != 0 {
            xs.push(0.5);
        }
        let acts = [
            Act::Identity,
            Act::Relu,
            Act::Relu6,
            Act::HardSwish,
            Act::HardSigmoid,
            Act::Silu,
            Act::Sigmoid,
            Act::Gelu,
            Act::ScaledTanh,
            Act::GeluTanh,
            Act::Tanh,
        ];
        for act in acts {
            for chunk in xs.chunks_exact(16) {
                let (mut narrow, mut wide) = ([0f32; 16], [0f32; 16]);
                unsafe {
                    for h in 0..2 {
                        let v = avx2::apply(act, _mm256_loadu_ps(chunk.as_ptr().add(8 * h)));
                        _mm256_storeu_ps(narrow.as_mut_ptr().add(8 * h), v);
                    }
                    let v = avx512::apply(act, _mm512_loadu_ps(chunk.as_ptr()));
                    _mm512_storeu_ps(wide.as_mut_ptr(), v);
                }
                for i in 0..16 {
                    assert_eq!(
                        narrow[i].to_bits(),
                        wide[i].to_bits(),
                        "{act:?}({}): {} vs {}",
                        chunk[i],
                        narrow[i],
                        wide[i]
                    );
                }
            }
        }
    }

    fn erf_ref(x: f64) -> f64 {
        // Series/continued expansion in f64 is overkill; integrate exp(-t^2) with Simpson's rule.
        let n = 2000;
        let h = x / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(0.0) + f(x);
        for i in 1..n {
            s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -400..=400 {
            let x = i as f32 * 0.05;
            let e = exp_scalar(x) as f64;
            let r = (x as f64).exp();
            assert!((e - r).abs() <= 3e-7 * r, "exp({x}) = {e}, want {r}");
            let ef = erf_scalar(x) as f64;
            let rf = erf_ref(x as f64);
            assert!((ef - rf).abs() <= 3e-7, "erf({x}) = {ef}, want {rf}");
        }
    }

    #[test]
    fn backward_matches_the_f64_derivative_on_every_path() {
        // 603 elements: the SIMD part and a ragged tail; the scalar path alone as well.
        let xs: Vec<f32> = (-301..302).map(|i| i as f32 * 0.031).collect();
        let dy: Vec<f32> = (0..xs.len()).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
        for act in [
            Act::Silu,
            Act::Sigmoid,
            Act::ScaledTanh,
            Act::Relu,
            Act::HardSwish,
        ] {
            let mut fast = dy.clone();
            assert!(act.backward_slice(&xs, &mut fast));
            let mut scalar = dy.clone();
            assert!(act.backward_scalar(&xs, &mut scalar));
            for (i, x) in xs.iter().enumerate() {
                let xd = *x as f64;
                let sig = 1.0 / (1.0 + (-xd).exp());
                let d = match act {
                    Act::Silu => sig * (1.0 + xd * (1.0 - sig)),
                    Act::Sigmoid => sig * (1.0 - sig),
                    Act::ScaledTanh => {
                        1.7159 * (2.0 / 3.0) * (1.0 - (2.0 * xd / 3.0).tanh().powi(2))
                    }
                    Act::Relu => (xd > 0.0) as u8 as f64,
                    Act::HardSwish if xd < -3.0 => 0.0,
                    Act::HardSwish if xd <= 3.0 => xd / 3.0 + 0.5,
                    _ => 1.0,
                };
                let want = dy[i] as f64 * d;
                for (path, got) in [("dispatched", fast[i]), ("scalar", scalar[i])] {
                    assert!(
                        (got as f64 - want).abs() <= 2e-6 * want.abs().max(1.0),
                        "{act:?}'({x}) on the {path} path: {got}, want {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn simd_matches_scalar() {
        let xs: Vec<f32> = (-300..300).map(|i| i as f32 * 0.037).collect();
        for act in [
            Act::Relu,
            Act::Relu6,
            Act::HardSwish,
            Act::HardSigmoid,
            Act::Silu,
            Act::Sigmoid,
            Act::Gelu,
            Act::ScaledTanh,
            Act::GeluTanh,
            Act::Tanh,
        ] {
            let mut v = xs.clone();
            act.apply_slice(&mut v);
            for (x, y) in xs.iter().zip(&v) {
                let want = act.apply(*x);
                assert!(
                    (want - y).abs() <= 1e-6 * want.abs().max(1.0),
                    "{act:?}({x}) = {y}, scalar {want}"
                );
            }
            // And against f64 definitions.
            for x in &xs {
                let xd = *x as f64;
                let sig = 1.0 / (1.0 + (-xd).exp());
                let want = match act {
                    Act::Relu => xd.max(0.0),
                    Act::Relu6 => xd.clamp(0.0, 6.0),
                    Act::HardSwish => xd * (xd + 3.0).clamp(0.0, 6.0) / 6.0,
                    Act::HardSigmoid => (xd + 3.0).clamp(0.0, 6.0) / 6.0,
                    Act::Silu => xd * sig,
                    Act::Sigmoid => sig,
                    Act::Gelu => 0.5 * xd * (1.0 + erf_ref(xd / 2f64.sqrt())),
                    Act::Identity => xd,
                    Act::ScaledTanh => 1.7159 * (2.0 * xd / 3.0).tanh(),
                    Act::GeluTanh => {
                        let k = (2.0 / std::f64::consts::PI).sqrt();
                        0.5 * xd * (1.0 + (k * (xd + 0.044715 * xd.powi(3))).tanh())
                    }
                    Act::Tanh => xd.tanh(),
                };
                let got = act.apply(*x) as f64;
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{act:?}({x})"
                );
            }
        }
    }
}
