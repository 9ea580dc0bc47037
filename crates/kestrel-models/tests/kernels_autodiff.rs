//! kestrel's convolution under burn's autodiff (`kestrel_models::kernels::conv2d`) gives the
//! same outputs and the same gradients for x, weight and bias as burn's own `conv2d`, an
//! independent implementation, on the shapes the zoo uses: 1×1, 3×3 stride 1 and 2, a 7×7
//! stride-2 stem, dilation, asymmetric (TF "same") padding, and depthwise.

use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Distribution;
use kestrel_models::kernels::{conv2d, takes_kestrel_path};

/// The tests here seed burn's device RNG and draw from it; run in parallel threads they would
/// draw each other's numbers (the conv test draws its loss weights twice from one seed), so each
/// holds this lock for its whole body.
fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

struct Case {
    name: &'static str,
    x: [usize; 4],
    w: [usize; 4],
    stride: usize,
    pad: [(usize, usize); 2],
    dilation: usize,
    groups: usize,
    bias: bool,
    /// Whether kestrel's kernels take this case (else it goes to burn's conv).
    kestrel: bool,
}

fn max_abs(t: Tensor<4>) -> f32 {
    t.abs().max().into_scalar::<f32>()
}

fn check(case: &Case) {
    let device = Device::flex().autodiff();
    device.seed(7);
    let x0 = Tensor::<4>::random(case.x, Distribution::Normal(0.0, 1.0), &device);
    let w0 = Tensor::<4>::random(case.w, Distribution::Normal(0.0, 0.5), &device);
    let b0 = Tensor::<1>::random([case.w[0]], Distribution::Normal(0.0, 0.5), &device);
    let options =
        ConvOptions::new_with_padding([case.stride; 2], case.pad, [case.dilation; 2], case.groups);
    let run = |ours: bool| {
        let x = x0.clone().detach().require_grad();
        let w = w0.clone().detach().require_grad();
        let b = b0.clone().detach().require_grad();
        let bias = case.bias.then(|| b.clone());
        if ours {
            assert_eq!(
                takes_kestrel_path(&x, &w, &options),
                case.kestrel,
                "{}: which path runs",
                case.name
            );
        }
        let y = if ours {
            conv2d(x.clone(), w.clone(), bias, options.clone())
        } else {
            burn::tensor::module::conv2d(x.clone(), w.clone(), bias, options.clone())
        };
        // A loss whose gradient differs per output element: sum(y * r) with r fixed.
        let r = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &Device::flex());
        let r = Tensor::<4>::from_data(r.into_data(), &device);
        let grads = (y.clone() * r).sum().backward();
        let gx = x.grad(&grads).expect("x grad");
        let gw = w.grad(&grads).expect("w grad");
        let gb = case.bias.then(|| b.grad(&grads).expect("b grad"));
        (y.inner(), gx, gw, gb)
    };
    // The same r for both: reseed before each run.
    Device::flex().seed(11);
    let (y_ref, gx_ref, gw_ref, gb_ref) = run(false);
    Device::flex().seed(11);
    let (y, gx, gw, gb) = run(true);
    for (what, got, want) in [
        ("y", y, y_ref),
        (
            "dx",
            Tensor::from_data(gx.into_data(), &Device::flex()),
            Tensor::from_data(gx_ref.into_data(), &Device::flex()),
        ),
        (
            "dw",
            Tensor::from_data(gw.into_data(), &Device::flex()),
            Tensor::from_data(gw_ref.into_data(), &Device::flex()),
        ),
    ] {
        assert_eq!(got.dims(), want.dims(), "{}: {what} shape", case.name);
        let scale = max_abs(want.clone()).max(1e-6);
        let err = max_abs(got - want);
        assert!(
            err <= 1e-4 * scale,
            "{}: {what} differs from burn's by {err} (scale {scale})",
            case.name
        );
    }
    if let (Some(gb), Some(gb_ref)) = (gb, gb_ref) {
        let scale = gb_ref.clone().abs().max().into_scalar::<f32>().max(1e-6);
        let err: f32 = (gb - gb_ref).abs().max().into_scalar();
        assert!(err <= 1e-4 * scale, "{}: db differs by {err}", case.name);
    }
}

#[test]
fn kestrel_conv_matches_burn_forward_and_gradients() {
    let _rng = rng_lock();
    let cases = [
        Case {
            name: "1x1",
            x: [2, 8, 7, 6],
            w: [12, 8, 1, 1],
            stride: 1,
            pad: [(0, 0), (0, 0)],
            dilation: 1,
            groups: 1,
            bias: false,
            kestrel: true,
        },
        Case {
            name: "3x3 s1 bias",
            x: [2, 6, 9, 8],
            w: [20, 6, 3, 3],
            stride: 1,
            pad: [(1, 1), (1, 1)],
            dilation: 1,
            groups: 1,
            bias: true,
            kestrel: true,
        },
        Case {
            name: "3x3 s2",
            x: [3, 5, 11, 10],
            w: [7, 5, 3, 3],
            stride: 2,
            pad: [(1, 1), (1, 1)],
            dilation: 1,
            groups: 1,
            bias: false,
            kestrel: true,
        },
        Case {
            name: "7x7 s2 stem",
            x: [2, 3, 20, 18],
            w: [8, 3, 7, 7],
            stride: 2,
            pad: [(3, 3), (3, 3)],
            dilation: 1,
            groups: 1,
            bias: false,
            kestrel: true,
        },
        Case {
            name: "3x3 dilation 2",
            x: [2, 4, 10, 9],
            w: [6, 4, 3, 3],
            stride: 1,
            pad: [(2, 2), (2, 2)],
            dilation: 2,
            groups: 1,
            bias: false,
            kestrel: true,
        },
        Case {
            name: "3x3 s2 TF same",
            x: [2, 4, 10, 9],
            w: [6, 4, 3, 3],
            stride: 2,
            pad: [(0, 1), (1, 1)],
            dilation: 1,
            groups: 1,
            bias: true,
            kestrel: true,
        },
        Case {
            name: "1x1 s2 downsample",
            x: [2, 8, 9, 9],
            w: [16, 8, 1, 1],
            stride: 2,
            pad: [(0, 0), (0, 0)],
            dilation: 1,
            groups: 1,
            bias: false,
            kestrel: true,
        },
        Case {
            name: "depthwise 3x3 s1",
            x: [2, 6, 9, 8],
            w: [6, 1, 3, 3],
            stride: 1,
            pad: [(1, 1), (1, 1)],
            dilation: 1,
            groups: 6,
            bias: false,
            kestrel: true,
        },
        Case {
            name: "depthwise 5x5 s2",
            x: [2, 5, 12, 11],
            w: [5, 1, 5, 5],
            stride: 2,
            pad: [(2, 2), (2, 2)],
            dilation: 1,
            groups: 5,
            bias: true,
            kestrel: true,
        },
        Case {
            name: "grouped (burn's path)",
            x: [2, 8, 6, 6],
            w: [8, 4, 3, 3],
            stride: 1,
            pad: [(1, 1), (1, 1)],
            dilation: 1,
            groups: 2,
            bias: false,
            kestrel: false,
        },
    ];
    for case in &cases {
        check(case);
    }
}

/// ReLU, ReLU6, hard-swish, hard-sigmoid, SiLU, sigmoid and LeNet's scaled tanh as kestrel ops: the
/// same values and input gradients as burn's own ops, on values spread over every piece (−9 … 9).
#[test]
fn kestrel_activations_match_burn_forward_and_gradient() {
    let _rng = rng_lock();
    use burn::tensor::activation;
    use kestrel_kernels::Act;
    use kestrel_models::kernels::activation as kestrel_activation;
    let device = Device::flex().autodiff();
    device.seed(3);
    let x0 = Tensor::<4>::random([2, 3, 40, 41], Distribution::Uniform(-9.0, 9.0), &device);
    let r = Tensor::<4>::random([2, 3, 40, 41], Distribution::Normal(0.0, 1.0), &device);
    type Reference = fn(Tensor<4>) -> Tensor<4>;
    let cases: [(Act, Reference); 7] = [
        (Act::Relu, |x| activation::relu(x)),
        (Act::Silu, |x| activation::silu(x)),
        (Act::Sigmoid, |x| activation::sigmoid(x)),
        (Act::Relu6, |x| activation::relu6(x)),
        (Act::HardSwish, |x| activation::hard_swish(x)),
        (Act::HardSigmoid, |x| {
            activation::hard_sigmoid(x, 1.0 / 6.0, 0.5)
        }),
        (Act::ScaledTanh, |x| {
            x.mul_scalar(2.0 / 3.0).tanh().mul_scalar(1.7159)
        }),
    ];
    for (act, reference) in cases {
        let run = |ours: bool| {
            let x = x0.clone().detach().require_grad();
            let y = if ours {
                kestrel_activation(x.clone(), act)
                    .unwrap_or_else(|_| panic!("flex takes the kestrel path for {act:?}"))
            } else {
                reference(x.clone())
            };
            let g = (y.clone() * r.clone()).sum().backward();
            (y.inner(), x.grad(&g).expect("x grad"))
        };
        let (y_ref, g_ref) = run(false);
        let (y, g) = run(true);
        let ey: f32 = (y - y_ref).abs().max().into_scalar();
        let eg: f32 = (g - g_ref).abs().max().into_scalar();
        assert!(
            ey <= 1e-5 && eg <= 1e-5,
            "{act:?}: value error {ey}, gradient error {eg}"
        );
    }
    // An activation the op does not cover leaves the caller on burn's path.
    assert!(kestrel_activation(x0, Act::Gelu).is_err());
}

/// Unpadded average pooling as a kestrel op (`kernels::avg_pool2d`): the same values and input
/// gradients as burn's `AvgPool2d`, for LeNet's 2×2/2, ResNet-D's ceil-mode 2×2/2 on an odd map
/// and an overlapping 3×3/2; a padded pool stays on burn's path and gives burn's result.
#[test]
fn kestrel_avg_pool_matches_burn_forward_and_gradient() {
    let _rng = rng_lock();
    use burn::nn::pool::AvgPool2dConfig;
    use burn::nn::PaddingConfig2d;
    let device = Device::flex().autodiff();
    device.seed(5);
    let pools = [
        (
            [2, 2],
            [2, 2],
            false,
            PaddingConfig2d::Valid,
            [3, 6, 28, 28],
        ),
        ([2, 2], [2, 2], true, PaddingConfig2d::Valid, [2, 5, 7, 9]),
        (
            [3, 3],
            [2, 2],
            false,
            PaddingConfig2d::Valid,
            [2, 4, 11, 10],
        ),
        (
            [3, 3],
            [1, 1],
            false,
            PaddingConfig2d::Explicit(1, 1, 1, 1),
            [2, 3, 6, 6],
        ),
    ];
    for (kernel, stride, ceil, padding, shape) in pools {
        let pool = AvgPool2dConfig::new(kernel)
            .with_strides(stride)
            .with_ceil_mode(ceil)
            .with_count_include_pad(false)
            .with_padding(padding.clone())
            .init();
        let x0 = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let padded = !matches!(padding, PaddingConfig2d::Valid);
        assert_eq!(
            kestrel_models::kernels::avg_pool_takes_kestrel_path(&pool, &x0),
            !padded,
            "{kernel:?}/{stride:?}: path rule"
        );
        let run = |ours: bool| {
            let x = x0.clone().detach().require_grad();
            let y = if ours {
                kestrel_models::kernels::avg_pool2d(&pool, x.clone())
            } else {
                pool.forward(x.clone())
            };
            let r = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
            // The same r for both runs: seeded per case below.
            let g = (y.clone() * r).sum().backward();
            (y.inner(), x.grad(&g).expect("x grad"))
        };
        device.seed(11);
        let (y_ref, g_ref) = run(false);
        device.seed(11);
        let (y, g) = run(true);
        assert_eq!(
            y.dims(),
            y_ref.dims(),
            "{kernel:?}/{stride:?} ceil {ceil}: output shape"
        );
        let ey: f32 = (y - y_ref).abs().max().into_scalar();
        let eg: f32 = (g - g_ref).abs().max().into_scalar();
        assert!(
            ey <= 1e-5 && eg <= 1e-5,
            "{kernel:?}/{stride:?} ceil {ceil}: value error {ey}, gradient error {eg}"
        );
    }
}

/// Training-mode batch norm fused with its activation (`layers::bn_then`) against burn's
/// `BatchNorm` followed by burn's activation: the output, the gradients of x, gamma and beta,
/// and the running statistics after the step. Also: a frozen (eval-mode) layer and a device
/// without autodiff stay on burn's path.
#[test]
fn kestrel_batch_norm_matches_burn_forward_gradients_and_running_stats() {
    let _rng = rng_lock();
    use burn::module::Module as _;
    use burn::nn::BatchNormConfig;
    use burn::tensor::activation;
    use kestrel_kernels::Act;
    use kestrel_models::kernels::batch_norm_takes_kestrel_path;
    use kestrel_models::layers::bn_then;
    let device = Device::flex().autodiff();
    device.seed(5);
    // Per-channel offsets and scales, so the statistics differ per channel.
    let x0 = Tensor::<4>::random([3, 4, 9, 11], Distribution::Normal(0.0, 1.0), &device)
        * Tensor::<1>::from_floats([1.0, 3.0, 0.5, 2.0], &device).reshape([1, 4, 1, 1])
        + Tensor::<1>::from_floats([0.0, 5.0, -2.0, 40.0], &device).reshape([1, 4, 1, 1]);
    let r = Tensor::<4>::random([3, 4, 9, 11], Distribution::Normal(0.0, 1.0), &device);
    // A fresh layer per run: clones of a module share its running-state cells.
    let new_bn = || {
        let mut bn = BatchNormConfig::new(4).init(&device);
        bn.gamma = bn
            .gamma
            .map(|_| Tensor::from_floats([1.5, 0.5, -1.0, 2.0], &device).require_grad());
        bn.beta = bn
            .beta
            .map(|_| Tensor::from_floats([0.2, -0.3, 0.1, 1.0], &device).require_grad());
        bn
    };
    type Reference = fn(Tensor<4>) -> Tensor<4>;
    let cases: [(Act, Reference); 5] = [
        (Act::Identity, |x| x),
        (Act::Relu, |x| activation::relu(x)),
        (Act::Relu6, |x| activation::relu6(x)),
        (Act::HardSwish, |x| activation::hard_swish(x)),
        (Act::Silu, |x| activation::silu(x)),
    ];
    let max_err = |a: Tensor<1>, b: Tensor<1>| -> f32 { (a - b).abs().max().into_scalar() };
    for (act, reference) in cases {
        let run = |ours: bool| {
            let bn = new_bn();
            let x = x0.clone().detach().require_grad();
            assert!(batch_norm_takes_kestrel_path(&bn, &x, act));
            let y = if ours {
                bn_then(&bn, x.clone(), act, reference)
            } else {
                reference(bn.forward(x.clone()))
            };
            let g = (y.clone() * r.clone()).sum().backward();
            let flat = |t: Tensor<4>| t.inner().reshape([-1]);
            (
                flat(y),
                x.grad(&g).expect("x grad").reshape([-1]),
                bn.gamma.grad(&g).expect("gamma grad"),
                bn.beta.grad(&g).expect("beta grad"),
                bn.running_mean.value_sync().inner(),
                bn.running_var.value_sync().inner(),
            )
        };
        let want = run(false);
        let got = run(true);
        let names = ["y", "dx", "dgamma", "dbeta", "running_mean", "running_var"];
        let errs = [
            max_err(got.0, want.0.clone()),
            max_err(got.1, want.1.clone()),
            max_err(got.2, want.2.clone()),
            max_err(got.3, want.3.clone()),
            max_err(got.4, want.4.clone()),
            max_err(got.5, want.5.clone()),
        ];
        let scales = [
            want.0.abs().max().into_scalar::<f32>(),
            want.1.abs().max().into_scalar::<f32>(),
            want.2.abs().max().into_scalar::<f32>(),
            want.3.abs().max().into_scalar::<f32>(),
            want.4.abs().max().into_scalar::<f32>(),
            want.5.abs().max().into_scalar::<f32>(),
        ];
        for ((name, e), s) in names.iter().zip(errs).zip(scales) {
            assert!(
                e <= 2e-5 * s.max(1.0),
                "{act:?} {name}: error {e} (scale {s})"
            );
        }
    }
    // A frozen layer (eval-mode behaviour) and an inference device take burn's path.
    assert!(!batch_norm_takes_kestrel_path(
        &new_bn().freeze(),
        &x0,
        Act::Relu
    ));
    assert!(!batch_norm_takes_kestrel_path(
        &new_bn(),
        &x0.clone().inner(),
        Act::Relu
    ));
    // An activation the kernel cannot differentiate also stays on burn's path.
    assert!(!batch_norm_takes_kestrel_path(&new_bn(), &x0, Act::Gelu));
}

/// A residual block as the zoo's CNNs run it in training, on kestrel's ops (dense convolutions
/// that hand on NHWC activations, the fused batch norm reading and writing NHWC, the fused
/// residual add + ReLU, a depthwise convolution that needs NCHW planes again) against the same
/// block on burn's own ops: the same output and the same gradients for the input, every weight
/// and a batch-norm scale.
#[test]
fn a_residual_block_on_nhwc_activations_matches_burns_ops() {
    let _rng = rng_lock();
    use burn::nn::BatchNormConfig;
    use burn::tensor::activation::relu;
    use kestrel_kernels::Act;
    use kestrel_models::kernels::{batch_norm_act, residual_add};
    let device = Device::flex().autodiff();
    device.seed(5);
    let x0 = Tensor::<4>::random([3, 8, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let w1 = Tensor::<4>::random([16, 8, 3, 3], Distribution::Normal(0.0, 0.3), &device);
    let w2 = Tensor::<4>::random([16, 16, 3, 3], Distribution::Normal(0.0, 0.3), &device);
    let wd = Tensor::<4>::random([16, 1, 3, 3], Distribution::Normal(0.0, 0.3), &device);
    let r = Tensor::<4>::random([3, 16, 5, 5], Distribution::Normal(0.0, 1.0), &device);
    let bn1 = BatchNormConfig::new(16).init(&device);
    let bn2 = BatchNormConfig::new(16).init(&device);
    let same = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let depthwise = ConvOptions::new([2, 2], [1, 1], [1, 1], 16);
    let run = |ours: bool| {
        let (x, w1, w2, wd) = (
            x0.clone().detach().require_grad(),
            w1.clone().detach().require_grad(),
            w2.clone().detach().require_grad(),
            wd.clone().detach().require_grad(),
        );
        let conv = |x: Tensor<4>, w: Tensor<4>, o: &ConvOptions<2>| {
            if ours {
                conv2d(x, w, None, o.clone())
            } else {
                burn::tensor::module::conv2d(x, w, None, o.clone())
            }
        };
        let bn_act = |bn: &burn::nn::BatchNorm, y: Tensor<4>, act: Act| {
            if ours {
                batch_norm_act(bn, y, act).unwrap_or_else(|_| panic!("kestrel's batch norm"))
            } else if act == Act::Relu {
                relu(bn.forward(y))
            } else {
                bn.forward(y)
            }
        };
        let a = bn_act(&bn1, conv(x.clone(), w1.clone(), &same), Act::Relu);
        let b = bn_act(&bn2, conv(a.clone(), w2.clone(), &same), Act::Identity);
        let c = if ours {
            residual_add(b, a, true)
        } else {
            relu(b + a)
        };
        let y = conv(c, wd.clone(), &depthwise);
        let grads = (y.clone() * r.clone()).sum().backward();
        let flat = |t: Option<Tensor<4>>| {
            t.expect("gradient")
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let gamma = bn1.gamma.val().grad(&grads).expect("gamma gradient");
        (
            y.inner().into_data().try_to_vec::<f32>().unwrap(),
            [
                flat(x.grad(&grads)),
                flat(w1.grad(&grads)),
                flat(w2.grad(&grads)),
                flat(wd.grad(&grads)),
                gamma.into_data().try_to_vec::<f32>().unwrap(),
            ],
        )
    };
    let (y_ref, g_ref) = run(false);
    let (y, g) = run(true);
    let close = |what: &str, got: &[f32], want: &[f32]| {
        assert_eq!(got.len(), want.len(), "{what} size");
        let scale = want.iter().fold(1e-6f32, |a, v| a.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0f32, |a, (g, w)| a.max((g - w).abs()));
        assert!(
            err <= 1e-4 * scale,
            "{what} differs from burn's by {err} (scale {scale})"
        );
    };
    close("y", &y, &y_ref);
    for (what, (got, want)) in ["dx", "dw1", "dw2", "dw_depthwise", "dgamma1"]
        .iter()
        .zip(g.iter().zip(&g_ref))
    {
        close(what, got, want);
    }
}
