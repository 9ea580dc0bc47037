//! kestrel's own kernels under burn's autodiff: backend extensions (the Burn Book's "Backend
//! Extension" chapter) that run dense and depthwise convolutions (forward and both gradients),
//! training-mode batch norm fused with its activation, the activations burn composes from
//! several ops, and unpadded average pooling on `kestrel-kernels`, whose packed GEMM is the
//! same kernel the inference engine uses.
//!
//! burn-flex's convolution converts each input to NHWC, builds a tiled im2col, and computes the
//! input gradient as a generic transposed convolution and the weight gradient through an
//! unfold: three separate code paths. Here the forward and the input gradient share one GEMM
//! (the input gradient split by stride phase, so no work is spent on inserted zeros), the weight
//! gradient sums outer products read through the forward's offset table, and convs with 1–3
//! input channels run a direct NCHW forward. Activations stay NHWC from one kestrel op to the
//! next (convolutions, batch norm, activations, the residual add; see "NHWC" below), so a
//! convolution transposes neither its input nor its output nor either gradient.
//!
//! [`conv2d`] is what the families call (through [`crate::layers::Counted`]). It takes the
//! kestrel path for f32 dense and depthwise convolutions on the flex backend (training or not),
//! and burn's own `conv2d` everywhere else (other grouped convolutions, other backends, other
//! dtypes), so an unsupported case is slower, never wrong; the other ops follow the same rule.
//! `KESTREL_CONV=burn` turns every kestrel path here off, for comparison.

use std::sync::OnceLock;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, TensorData};
use kestrel_kernels::conv_train::{self, depthwise};
use kestrel_kernels::{Act as KernelAct, ConvGeometry};

/// Dense 2-D convolution, forward and gradients, as an extension every backend has: the
/// default bodies are burn's own ops; Flex overrides them with kestrel's kernels, and Autodiff
/// records a backward step that calls the inner backend's gradient ops.
#[backend_extension(Flex, Autodiff)]
pub trait KestrelConv: Backend {
    /// `conv2d(x, weight)` without bias.
    fn kestrel_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The gradient with respect to `x`.
    fn kestrel_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, grad, options)
    }

    /// The gradient with respect to `weight`.
    fn kestrel_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, grad, options)
    }

    /// Both gradients, `(dx, dW)`; `dx` is computed only when `with_x` (else it is `grad`,
    /// unused). Flex shares one NHWC copy of `grad` between the two.
    fn kestrel_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        with_x: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        gradients_one_by_one::<Self>(x, weight, grad, options, with_x)
    }
}

/// [`KestrelConv::kestrel_conv2d_backward`] as its two single-gradient ops, `dx` only when
/// `with_x` (else `grad`, unused).
fn gradients_one_by_one<B: KestrelConv>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: ConvOptions<2>,
    with_x: bool,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let dx = if with_x {
        B::kestrel_conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone())
    } else {
        grad.clone()
    };
    (
        dx,
        B::kestrel_conv2d_weight_backward(x, weight, grad, options),
    )
}

/// The kernels' geometry for a dense (groups = 1) or depthwise (groups = in = out channels)
/// convolution, or None when kestrel's path does not apply.
fn geometry(x: &[usize], w: &[usize], o: &ConvOptions<2>) -> Option<ConvGeometry> {
    if x.len() != 4 || w.len() != 4 {
        return None;
    }
    let dense = o.groups == 1 && x[1] == w[1];
    let depthwise = o.groups > 1 && o.groups == x[1] && w[0] == o.groups && w[1] == 1;
    (dense || depthwise).then(|| ConvGeometry {
        in_ch: x[1],
        out_ch: w[0],
        kernel: [w[2], w[3]],
        stride: o.stride,
        dilation: o.dilation,
        pad: [
            o.padding[0].0,
            o.padding[0].1,
            o.padding[1].0,
            o.padding[1].1,
        ],
        groups: o.groups,
        tf_same: false,
    })
}

fn f32_slice(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
    }
}

fn flex_tensor(data: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

// NHWC. Activations stay NHWC between kestrel's ops in training. A dense convolution's
// output (and its input gradient) is the `[n, h, w, c]` buffer its GEMM wrote, handed to burn as
// the logical NCHW tensor `permute([0, 3, 1, 2])` of it. The next convolution, batch norm,
// activation and residual add read it as NHWC directly; only ops that need NCHW planes
// (depthwise convolutions, pooling) transpose. burn's unary ops keep the layout, but its binary
// ops (a bias, drop path, autodiff's sum of two gradients) walk operands in NCHW order and write
// NCHW, which the next kestrel op transposes back: correct, slower. Before, every convolution
// transposed its input, its output, `dy`, `x` again and `dx`: 11% of a resnet20_cifar step.

/// The NHWC storage of a logically NCHW f32 tensor whose strides are NHWC's (where a dimension
/// of size 1 makes both layouts one, NCHW tensors qualify too).
fn nhwc_storage(t: &FlexTensor) -> Option<&[f32]> {
    let l = t.layout();
    let s = l.shape().to_vec();
    if s.len() != 4 || t.dtype() != DType::F32 || l.start_offset() != 0 {
        return None;
    }
    let (c, h, w) = (s[1], s[2], s[3]);
    let nhwc_strides = [h * w * c, 1, w * c, c];
    let strided = (0..4).all(|d| s[d] == 1 || l.strides()[d] == nhwc_strides[d] as isize);
    let storage = t.storage::<f32>();
    (strided && storage.len() == s.iter().product::<usize>()).then_some(storage)
}

/// Whether `t` is held NHWC (and not also NCHW-contiguous).
fn is_nhwc(t: &FlexTensor) -> bool {
    !t.layout().is_contiguous() && nhwc_storage(t).is_some()
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape().to_vec();
    [s[0], s[1], s[2], s[3]]
}

/// A 4-D tensor's values in NHWC order: its own storage when held NHWC, else transposed.
fn as_nhwc(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    if let Some(s) = nhwc_storage(t) {
        return std::borrow::Cow::Borrowed(s);
    }
    let [n, c, h, w] = dims4(t);
    std::borrow::Cow::Owned(conv_train::nchw_to_nhwc(&f32_slice(t), n, c, h * w))
}

/// A 4-D tensor's values in NCHW order: transposed when held NHWC.
fn as_nchw(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    if is_nhwc(t) {
        let [n, c, h, w] = dims4(t);
        let s = nhwc_storage(t).expect("checked by is_nhwc");
        return std::borrow::Cow::Owned(conv_train::nhwc_to_nchw(s, n, h * w, c));
    }
    f32_slice(t)
}

/// The logical NCHW tensor `[n, c, h, w]` over an NHWC buffer.
fn nhwc_tensor(data: Vec<f32>, [n, c, h, w]: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, [n, h, w, c])).permute(&[0, 3, 1, 2])
}

/// Whether `t`'s storage is exactly its elements, in some order (any permutation of a
/// contiguous tensor): an element-wise op may then run over the storage and keep the layout.
fn dense_storage(t: &FlexTensor) -> bool {
    let l = t.layout();
    l.start_offset() == 0
        && l.strides().iter().all(|&s| s > 0)
        && t.storage::<f32>().len() == l.num_elements()
        && {
            // Distinct strides that tile the buffer: sorted by stride, each is the product of
            // the sizes below it.
            let mut dims: Vec<(isize, usize)> = l
                .strides()
                .iter()
                .copied()
                .zip(l.shape().to_vec())
                .filter(|d| d.1 > 1)
                .collect();
            dims.sort();
            let mut expect = 1isize;
            dims.iter().all(|&(st, sz)| {
                let ok = st == expect;
                expect *= sz as isize;
                ok
            })
        }
}

fn is_f32(ts: &[&FlexTensor]) -> bool {
    ts.iter().all(|t| t.dtype() == DType::F32)
}

impl KestrelConv for Flex {
    fn kestrel_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let (xs, ws) = (
            x.layout().shape().to_vec(),
            weight.layout().shape().to_vec(),
        );
        let Some(g) = geometry(&xs, &ws, &options).filter(|_| is_f32(&[&x, &weight])) else {
            return Flex::conv2d(x, weight, None, options);
        };
        let (n, h, w) = (xs[0], xs[2], xs[3]);
        let weight = f32_slice(&weight);
        if g.groups == 1 && !conv_train::forward_is_direct_nchw(&g) {
            let (y, oh, ow) = conv_train::conv2d_forward_nhwc(&g, &as_nhwc(&x), n, h, w, &weight);
            return nhwc_tensor(y, [n, g.out_ch, oh, ow]);
        }
        let x = as_nchw(&x);
        if g.groups == 1 {
            // A direct convolution of 1–3 channel planes (an image stem): its output goes on
            // NHWC, as every dense convolution's does, so the layers after it never transpose.
            let (y, oh, ow) = conv_train::conv2d_forward_nchw(&g, &x, n, h, w, &weight);
            let y = conv_train::nchw_to_nhwc(&y, n, g.out_ch, oh * ow);
            return nhwc_tensor(y, [n, g.out_ch, oh, ow]);
        }
        let (y, oh, ow) = depthwise::forward_nchw(&g, &x, n, h, w, &weight);
        flex_tensor(y, [n, g.out_ch, oh, ow])
    }

    fn kestrel_conv2d_x_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let (xs, ws) = (
            x.layout().shape().to_vec(),
            weight.layout().shape().to_vec(),
        );
        let gs = grad.layout().shape().to_vec();
        let Some(g) = geometry(&xs, &ws, &options).filter(|_| is_f32(&[&x, &weight, &grad])) else {
            return Flex::conv2d_x_backward(x, weight, grad, options);
        };
        if g.groups == 1 {
            // The input gradient alone: no weight gradient for a frozen weight.
            let dx = conv_train::conv2d_input_grad_nhwc(
                &g,
                &as_nhwc(&grad),
                xs[0],
                xs[2],
                xs[3],
                gs[2],
                gs[3],
                &f32_slice(&weight),
            );
            return nhwc_tensor(dx, dims4(&x));
        }
        let dx = depthwise::input_grad_nchw(
            &g,
            &as_nchw(&grad),
            xs[0],
            xs[2],
            xs[3],
            gs[2],
            gs[3],
            &f32_slice(&weight),
        );
        flex_tensor(dx, [xs[0], xs[1], xs[2], xs[3]])
    }

    fn kestrel_conv2d_weight_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let (xs, ws) = (
            x.layout().shape().to_vec(),
            weight.layout().shape().to_vec(),
        );
        let gs = grad.layout().shape().to_vec();
        let Some(g) = geometry(&xs, &ws, &options).filter(|_| is_f32(&[&x, &weight, &grad])) else {
            return Flex::conv2d_weight_backward(x, weight, grad, options);
        };
        if g.groups == 1 {
            return gradients_nhwc(&g, &x, &weight, &grad, false).1;
        }
        let dw = depthwise::weight_grad_nchw(
            &g,
            &as_nchw(&x),
            xs[0],
            xs[2],
            xs[3],
            &as_nchw(&grad),
            gs[2],
            gs[3],
        );
        flex_tensor(dw, [ws[0], ws[1], ws[2], ws[3]])
    }

    fn kestrel_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
        with_x: bool,
    ) -> (FlexTensor, FlexTensor) {
        let (xs, ws) = (
            x.layout().shape().to_vec(),
            weight.layout().shape().to_vec(),
        );
        let dense =
            geometry(&xs, &ws, &options).filter(|g| g.groups == 1 && is_f32(&[&x, &weight, &grad]));
        let Some(g) = dense else {
            // Depthwise and burn's fallback: the two gradients one by one.
            return gradients_one_by_one::<Self>(x, weight, grad, options, with_x);
        };
        let (dx, dw) = gradients_nhwc(&g, &x, &weight, &grad, with_x);
        (dx.unwrap_or_else(|| grad.clone()), dw)
    }
}

/// A dense convolution's `(dx, dW)` on NHWC activations (dx held NHWC, only when `want_dx`).
fn gradients_nhwc(
    g: &ConvGeometry,
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    want_dx: bool,
) -> (Option<FlexTensor>, FlexTensor) {
    let ([n, c, h, w], [_, _, oh, ow]) = (dims4(x), dims4(grad));
    let (dx, dw) = conv_train::conv2d_backward_nhwc(
        g,
        &as_nhwc(x),
        n,
        h,
        w,
        &as_nhwc(grad),
        oh,
        ow,
        &f32_slice(weight),
        want_dx,
    );
    (
        dx.map(|dx| nhwc_tensor(dx, [n, c, h, w])),
        flex_tensor(dw, dims4(weight)),
    )
}

#[derive(Debug)]
struct KestrelConvBackward;

impl<B: Backend + KestrelConv> Backward<B, 2> for KestrelConvBackward {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let weight = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(weight_state);
        match (node_x, node_weight) {
            (node_x, Some(node_w)) => {
                let (dx, dw) =
                    B::kestrel_conv2d_backward(x, weight, grad, options, node_x.is_some());
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, dx);
                }
                grads.register::<B>(node_w.id, dw);
            }
            (Some(node), None) => {
                let dx = B::kestrel_conv2d_x_backward(x, weight, grad, options);
                grads.register::<B>(node.id, dx);
            }
            (None, None) => {}
        }
    }
}

impl<B: Backend + KestrelConv, C: CheckpointStrategy> KestrelConv for Autodiff<B, C> {
    fn kestrel_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match KestrelConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                prep.finish(
                    (x_state, weight_state, options.clone()),
                    B::kestrel_conv2d(x.into_primitive(), weight.into_primitive(), options),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kestrel_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }
}

/// Whether kestrel's convolution is on (`KESTREL_CONV=burn` turns it off). Read once.
fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("KESTREL_CONV").map_or(true, |v| v != "burn"))
}

/// Whether [`conv2d`] runs these operands on kestrel's kernels (else on burn's).
pub fn takes_kestrel_path(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    enabled()
        && x.dtype() == DType::F32
        && x.device().inner() == Device::flex()
        && geometry(&x.dims(), &weight.dims(), options).is_some()
}

/// `conv2d(x, weight, bias, options)` on kestrel's kernels where they apply (see the module
/// docs), burn's otherwise.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if !takes_kestrel_path(&x, &weight, &options) {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let y = Tensor::<4>::from_dispatch(<Dispatch as KestrelConv>::kestrel_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ));
    match bias {
        Some(b) => {
            let c = b.dims()[0];
            y + b.reshape([1, c, 1, 1])
        }
        None => y,
    }
}

// ---------------------------------------------------------------------------------------------
// Activations (ReLU6, hard-swish, hard-sigmoid, SiLU, sigmoid, LeNet's scaled tanh) as one op
// each way.
//
// burn builds `relu6` from two clamps and `hard_swish` from a clamp, a multiply and a scale, and
// records each clamp's backward as masks: four to six passes over the activation and a bool
// tensor apiece, in the forward and again in the backward. Here each is one pass forward and one
// pass backward, on the kernels' activation code (AVX2 both ways). SiLU is `x · sigmoid(x)` in
// burn: two ops forward and four backward.

/// The activations [`activation`] takes, as the extension's plain argument.
fn act_code(act: KernelAct) -> u8 {
    match act {
        KernelAct::Relu6 => 1,
        KernelAct::HardSwish => 2,
        KernelAct::HardSigmoid => 3,
        KernelAct::ScaledTanh => 4,
        KernelAct::Silu => 5,
        KernelAct::Sigmoid => 6,
        KernelAct::Relu => 7,
        _ => 0,
    }
}

fn act_from_code(code: u8) -> KernelAct {
    match code {
        1 => KernelAct::Relu6,
        2 => KernelAct::HardSwish,
        3 => KernelAct::HardSigmoid,
        4 => KernelAct::ScaledTanh,
        5 => KernelAct::Silu,
        6 => KernelAct::Sigmoid,
        7 => KernelAct::Relu,
        _ => KernelAct::Identity,
    }
}

/// Element-wise activation and its backward. Only Flex runs them: [`activation`] routes other
/// backends to burn's own ops before reaching the extension.
#[backend_extension(Flex, Autodiff)]
pub trait KestrelAct: Backend {
    fn kestrel_act(x: FloatTensor<Self>, act: u8) -> FloatTensor<Self> {
        let _ = (x, act);
        unreachable!("kestrel_act is routed to Flex only")
    }

    /// `grad · act'(x)`.
    fn kestrel_act_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        act: u8,
    ) -> FloatTensor<Self> {
        let _ = (x, grad, act);
        unreachable!("kestrel_act_backward is routed to Flex only")
    }
}

impl KestrelAct for Flex {
    fn kestrel_act(x: FlexTensor, act: u8) -> FlexTensor {
        if dense_storage(&x) {
            // Over the storage, keeping x's layout (NHWC stays NHWC); copied first if shared.
            let mut y = x;
            act_from_code(act).apply_slice_parallel(y.storage_mut::<f32>());
            return y;
        }
        let shape = x.layout().shape().clone();
        let mut y = f32_slice(&x).into_owned();
        act_from_code(act).apply_slice_parallel(&mut y);
        FlexTensor::from_data(TensorData::new(y, shape))
    }

    fn kestrel_act_backward(x: FlexTensor, grad: FlexTensor, act: u8) -> FlexTensor {
        if dense_storage(&x) && grad.layout() == x.layout() {
            let mut g = grad;
            act_from_code(act).backward_slice_parallel(x.storage::<f32>(), g.storage_mut::<f32>());
            return g;
        }
        if is_nhwc(&x) {
            // An NHWC activation whose gradient came back NCHW (burn's ops after it allocate
            // NCHW): the gradient goes on NHWC, as the convolution before it wants.
            let mut g = as_nhwc(&grad).into_owned();
            let xs = nhwc_storage(&x).expect("checked by is_nhwc");
            act_from_code(act).backward_slice_parallel(xs, &mut g);
            return nhwc_tensor(g, dims4(&x));
        }
        let shape = grad.layout().shape().clone();
        let mut g = f32_slice(&grad).into_owned();
        act_from_code(act).backward_slice_parallel(&f32_slice(&x), &mut g);
        FlexTensor::from_data(TensorData::new(g, shape))
    }
}

#[derive(Debug)]
struct KestrelActBackward;

impl<B: Backend + KestrelAct> Backward<B, 1> for KestrelActBackward {
    type State = (NodeId, u8);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, act) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::kestrel_act_backward(x, grad, act));
        }
    }
}

impl<B: Backend + KestrelAct, C: CheckpointStrategy> KestrelAct for Autodiff<B, C> {
    fn kestrel_act(x: FloatTensor<Self>, act: u8) -> FloatTensor<Self> {
        match KestrelActBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                prep.finish((x_state, act), B::kestrel_act(x.into_primitive(), act))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kestrel_act(x.into_primitive(), act)),
        }
    }
}

/// `act(x)` in one pass each way on the flex backend, for ReLU, ReLU6, hard-swish,
/// hard-sigmoid, SiLU, sigmoid and LeNet's scaled tanh, in place when `x` is not shared and
/// keeping its layout (an NHWC activation stays NHWC, which burn's ReLU backward does not keep
/// when its gradient is shared); `Err(x)` (the caller uses burn's ops) for other activations,
/// backends or dtypes.
pub fn activation<const D: usize>(x: Tensor<D>, act: KernelAct) -> Result<Tensor<D>, Tensor<D>> {
    let code = act_code(act);
    if code != 0 && enabled() && x.dtype() == DType::F32 && x.device().inner() == Device::flex() {
        Ok(Tensor::<D>::from_dispatch(
            <Dispatch as KestrelAct>::kestrel_act(x.into_dispatch(), code),
        ))
    } else {
        Err(x)
    }
}

// ---------------------------------------------------------------------------------------------
// The residual add, optionally followed by ReLU, as one op each way that keeps the layout of
// its first operand.
//
// burn's add writes in place only into an operand nobody else holds, and a block's output and
// its shortcut are both held (autodiff keeps them for the backward), so it allocates, and an
// allocated result is NCHW: every block would hand its successor NCHW and pay a transpose each
// way. ReLU after it was a second pass each way.

/// `act(y + shortcut)` for act = Identity or ReLU, and its backward. Only Flex runs them:
/// [`residual_add`] routes other backends and dtypes to burn's ops.
#[backend_extension(Flex, Autodiff)]
pub trait KestrelResidual: Backend {
    /// `relu` 0: `y + shortcut`; 1: `relu(y + shortcut)`.
    fn kestrel_residual(
        y: FloatTensor<Self>,
        shortcut: FloatTensor<Self>,
        relu: u8,
    ) -> FloatTensor<Self> {
        let _ = (y, shortcut, relu);
        unreachable!("kestrel_residual is routed to Flex only")
    }

    /// `grad · (out > 0)`, in `out`'s layout.
    fn kestrel_relu_backward_like(
        out: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let _ = (out, grad);
        unreachable!("kestrel_relu_backward_like is routed to Flex only")
    }
}

/// `t`'s values in `like`'s layout (both dense, same logical shape): `t` itself when the
/// layouts agree, else NHWC or NCHW as `like` is.
fn in_layout_of(t: FlexTensor, like: &FlexTensor) -> FlexTensor {
    if t.layout() == like.layout() {
        return t;
    }
    if is_nhwc(like) {
        let shape = dims4(like);
        return nhwc_tensor(as_nhwc(&t).into_owned(), shape);
    }
    let shape = like.layout().shape().clone();
    let data = if t.layout().num_dims() == 4 {
        as_nchw(&t).into_owned()
    } else {
        f32_slice(&t).into_owned()
    };
    FlexTensor::from_data(TensorData::new(data, shape))
}

impl KestrelResidual for Flex {
    fn kestrel_residual(y: FlexTensor, shortcut: FlexTensor, relu: u8) -> FlexTensor {
        let mut y = if dense_storage(&y) {
            y
        } else {
            let shape = y.layout().shape().clone();
            FlexTensor::from_data(TensorData::new(f32_slice(&y).into_owned(), shape))
        };
        let s = in_layout_of(shortcut, &y);
        let (out, src) = (y.storage_mut::<f32>(), s.storage::<f32>());
        kestrel_kernels::act::add_then(out, src, relu == 1);
        y
    }

    fn kestrel_relu_backward_like(out: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let mut g = in_layout_of(grad, &out);
        KernelAct::Relu.backward_slice_parallel(out.storage::<f32>(), g.storage_mut::<f32>());
        g
    }
}

#[derive(Debug)]
struct KestrelResidualBackward;

impl<B: Backend + KestrelResidual> Backward<B, 2> for KestrelResidualBackward {
    /// The output, for ReLU's mask (None without ReLU).
    type State = Option<B::FloatTensorPrimitive>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_y, node_s] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let grad = match ops.state {
            Some(out) => B::kestrel_relu_backward_like(out, grad),
            None => grad,
        };
        if let Some(node) = node_s {
            grads.register::<B>(node.id, grad.clone());
        }
        if let Some(node) = node_y {
            grads.register::<B>(node.id, grad);
        }
    }
}

impl<B: Backend + KestrelResidual, C: CheckpointStrategy> KestrelResidual for Autodiff<B, C> {
    fn kestrel_residual(
        y: FloatTensor<Self>,
        shortcut: FloatTensor<Self>,
        relu: u8,
    ) -> FloatTensor<Self> {
        match KestrelResidualBackward
            .prepare::<C>([y.node(), shortcut.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = B::kestrel_residual(y.into_primitive(), shortcut.into_primitive(), relu);
                prep.finish((relu == 1).then(|| out.clone()), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kestrel_residual(
                y.into_primitive(),
                shortcut.into_primitive(),
                relu,
            )),
        }
    }
}

/// `y + shortcut` (`relu(y + shortcut)` with `relu`) as one kestrel op each way on flex,
/// keeping `y`'s layout (see above); burn's ops elsewhere. The shapes must be equal.
pub fn residual_add<const D: usize>(y: Tensor<D>, shortcut: Tensor<D>, relu: bool) -> Tensor<D> {
    let ours = enabled()
        && y.dtype() == DType::F32
        && shortcut.dtype() == DType::F32
        && y.device().inner() == Device::flex()
        && y.dims() == shortcut.dims();
    if !ours {
        let sum = y + shortcut;
        return if relu {
            burn::tensor::activation::relu(sum)
        } else {
            sum
        };
    }
    Tensor::<D>::from_dispatch(<Dispatch as KestrelResidual>::kestrel_residual(
        y.into_dispatch(),
        shortcut.into_dispatch(),
        relu as u8,
    ))
}

// ---------------------------------------------------------------------------------------------
// Unpadded average pooling (LeNet's subsampling, ResNet-D's shortcut), forward and backward.
//
// burn-flex runs every 2-D average pool's backward through its generic 3-D implementation: 7% of
// a LeNet-5 training step. Here both directions are one pass over NCHW planes.

/// Average pooling and its backward. Only Flex runs them: [`avg_pool2d`] routes other backends,
/// padded pools and other dtypes to burn's `AvgPool2d` before reaching the extension.
#[backend_extension(Flex, Autodiff)]
pub trait KestrelAvgPool: Backend {
    /// `x_shape`: x's NCHW shape (kept for the backward).
    fn kestrel_avg_pool2d(
        x: FloatTensor<Self>,
        x_shape: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        ceil_mode: bool,
    ) -> FloatTensor<Self> {
        let _ = (x, x_shape, kernel, stride, ceil_mode);
        unreachable!("kestrel_avg_pool2d is routed to Flex only")
    }

    /// `dx` for an input of `x_shape`.
    fn kestrel_avg_pool2d_backward(
        grad: FloatTensor<Self>,
        x_shape: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        ceil_mode: bool,
    ) -> FloatTensor<Self> {
        let _ = (grad, x_shape, kernel, stride, ceil_mode);
        unreachable!("kestrel_avg_pool2d_backward is routed to Flex only")
    }
}

impl KestrelAvgPool for Flex {
    fn kestrel_avg_pool2d(
        x: FlexTensor,
        s: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        ceil_mode: bool,
    ) -> FlexTensor {
        let (y, oh, ow) = kestrel_kernels::pool2d::avg_pool_nchw(
            &as_nchw(&x),
            s[0] * s[1],
            s[2],
            s[3],
            kernel,
            stride,
            ceil_mode,
        );
        flex_tensor(y, [s[0], s[1], oh, ow])
    }

    fn kestrel_avg_pool2d_backward(
        grad: FlexTensor,
        x_shape: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        ceil_mode: bool,
    ) -> FlexTensor {
        let [n, c, h, w] = x_shape;
        let dx = kestrel_kernels::pool2d::avg_pool_nchw_backward(
            &as_nchw(&grad),
            n * c,
            h,
            w,
            kernel,
            stride,
            ceil_mode,
        );
        flex_tensor(dx, x_shape)
    }
}

#[derive(Debug)]
struct KestrelAvgPoolBackward;

impl<B: Backend + KestrelAvgPool> Backward<B, 1> for KestrelAvgPoolBackward {
    type State = ([usize; 4], [usize; 2], [usize; 2], bool);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_shape, kernel, stride, ceil_mode) = ops.state;
        if let Some(node) = node_x {
            grads.register::<B>(
                node.id,
                B::kestrel_avg_pool2d_backward(grad, x_shape, kernel, stride, ceil_mode),
            );
        }
    }
}

impl<B: Backend + KestrelAvgPool, C: CheckpointStrategy> KestrelAvgPool for Autodiff<B, C> {
    fn kestrel_avg_pool2d(
        x: FloatTensor<Self>,
        x_shape: [usize; 4],
        kernel: [usize; 2],
        stride: [usize; 2],
        ceil_mode: bool,
    ) -> FloatTensor<Self> {
        match KestrelAvgPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                (x_shape, kernel, stride, ceil_mode),
                B::kestrel_avg_pool2d(x.into_primitive(), x_shape, kernel, stride, ceil_mode),
            ),
            OpsKind::UnTracked(prep) => prep.finish(B::kestrel_avg_pool2d(
                x.into_primitive(),
                x_shape,
                kernel,
                stride,
                ceil_mode,
            )),
        }
    }
}

/// Whether [`avg_pool2d`] runs `pool` on `x` with kestrel's kernels: an unpadded pool of f32 on
/// the flex backend.
pub fn avg_pool_takes_kestrel_path(pool: &burn::nn::pool::AvgPool2d, x: &Tensor<4>) -> bool {
    let [_, _, h, w] = x.dims();
    let unpadded = matches!(
        pool.padding,
        burn::nn::PaddingConfig2d::Valid | burn::nn::PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    unpadded
        && h >= pool.kernel_size[0]
        && w >= pool.kernel_size[1]
        && enabled()
        && x.dtype() == DType::F32
        && x.device().inner() == Device::flex()
}

/// `pool.forward(x)`, on kestrel's kernels where [`avg_pool_takes_kestrel_path`] (the divisor
/// is then each window's pixel count, whatever `count_include_pad` says, as in PyTorch for an
/// unpadded pool), on burn's otherwise.
pub fn avg_pool2d(pool: &burn::nn::pool::AvgPool2d, x: Tensor<4>) -> Tensor<4> {
    if !avg_pool_takes_kestrel_path(pool, &x) {
        return pool.forward(x);
    }
    let x_shape = x.dims();
    Tensor::<4>::from_dispatch(<Dispatch as KestrelAvgPool>::kestrel_avg_pool2d(
        x.into_dispatch(),
        x_shape,
        pool.kernel_size,
        pool.stride,
        pool.ceil_mode,
    ))
}

// ---------------------------------------------------------------------------------------------
// Training-mode batch norm fused with the activation after it (kestrel_kernels::batch_norm).

/// The activations the fused batch norm takes; the extension's plain argument is the index.
const BN_ACTS: [KernelAct; 7] = [
    KernelAct::Identity,
    KernelAct::Relu,
    KernelAct::Relu6,
    KernelAct::HardSwish,
    KernelAct::HardSigmoid,
    KernelAct::Silu,
    KernelAct::Sigmoid,
];

fn bn_act_code(act: KernelAct) -> Option<u8> {
    BN_ACTS.iter().position(|a| *a == act).map(|i| i as u8)
}

fn bn_act_from_code(code: u8) -> KernelAct {
    BN_ACTS[code as usize]
}

/// Training-mode batch norm + activation and its backward. Only Flex runs them:
/// [`batch_norm_act`] routes other backends to burn's `BatchNorm` before reaching the extension.
#[backend_extension(Flex, Autodiff)]
pub trait KestrelBatchNorm: Backend {
    /// `(act(bn(x)), batch mean, biased batch variance)`.
    fn kestrel_bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: u8,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (x, gamma, beta, epsilon, act);
        unreachable!("kestrel_bn_train is routed to Flex only")
    }

    /// Inference mode: `act(bn(x))` with the running statistics, in `x`'s layout. Only called
    /// off autodiff (see [`batch_norm_eval_act`]).
    #[allow(clippy::too_many_arguments)]
    fn kestrel_bn_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        act: u8,
    ) -> FloatTensor<Self> {
        let _ = (x, gamma, beta, mean, variance, epsilon, act);
        unreachable!("kestrel_bn_eval is routed to Flex without autodiff only")
    }

    /// `(dx, dgamma, dbeta)`.
    #[allow(clippy::too_many_arguments)]
    fn kestrel_bn_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
        act: u8,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (x, gamma, beta, mean, variance, grad, epsilon, act);
        unreachable!("kestrel_bn_train_backward is routed to Flex only")
    }
}

/// `[n, c, h·w]` of an NCHW (or `[n, c, ..]`) shape.
fn ncl(shape: &[usize]) -> (usize, usize, usize) {
    (shape[0], shape[1], shape[2..].iter().product())
}

fn flex_vec(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

impl KestrelBatchNorm for Flex {
    fn kestrel_bn_eval(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        epsilon: f64,
        act: u8,
    ) -> FlexTensor {
        let shape = x.layout().shape().to_vec();
        let c = shape[1];
        let nhwc = shape.len() == 4 && is_nhwc(&x);
        let mut y = if nhwc || x.layout().is_contiguous() && dense_storage(&x) {
            x
        } else {
            FlexTensor::from_data(TensorData::new(f32_slice(&x).into_owned(), shape.clone()))
        };
        let hw: usize = shape[2..].iter().product();
        kestrel_kernels::batch_norm::eval_in_place(
            y.storage_mut::<f32>(),
            c,
            (!nhwc).then_some(hw),
            &f32_slice(&gamma),
            &f32_slice(&beta),
            &f32_slice(&mean),
            &f32_slice(&var),
            epsilon as f32,
            bn_act_from_code(act),
        );
        y
    }

    fn kestrel_bn_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        act: u8,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.layout().shape().to_vec();
        let (n, c, l) = ncl(&shape);
        if is_nhwc(&x) {
            let (y, mean, var) = kestrel_kernels::batch_norm::train_forward_nhwc(
                nhwc_storage(&x).expect("checked by is_nhwc"),
                n,
                l,
                c,
                &f32_slice(&gamma),
                &f32_slice(&beta),
                epsilon as f32,
                bn_act_from_code(act),
            );
            return (
                nhwc_tensor(y, dims4(&x)),
                flex_vec(mean, vec![c]),
                flex_vec(var, vec![c]),
            );
        }
        let (y, mean, var) = kestrel_kernels::batch_norm::train_forward_nchw(
            &if shape.len() == 4 {
                as_nchw(&x)
            } else {
                f32_slice(&x)
            },
            n,
            c,
            l,
            &f32_slice(&gamma),
            &f32_slice(&beta),
            epsilon as f32,
            bn_act_from_code(act),
        );
        (
            flex_vec(y, shape),
            flex_vec(mean, vec![c]),
            flex_vec(var, vec![c]),
        )
    }

    fn kestrel_bn_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        grad: FlexTensor,
        epsilon: f64,
        act: u8,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.layout().shape().to_vec();
        let (n, c, l) = ncl(&shape);
        if is_nhwc(&x) {
            let (dx, dgamma, dbeta) = kestrel_kernels::batch_norm::train_backward_nhwc(
                nhwc_storage(&x).expect("checked by is_nhwc"),
                &as_nhwc(&grad),
                n,
                l,
                c,
                &f32_slice(&gamma),
                &f32_slice(&beta),
                &f32_slice(&mean),
                &f32_slice(&variance),
                epsilon as f32,
                bn_act_from_code(act),
            );
            return (
                nhwc_tensor(dx, dims4(&x)),
                flex_vec(dgamma, vec![c]),
                flex_vec(dbeta, vec![c]),
            );
        }
        let grad = if shape.len() == 4 {
            as_nchw(&grad)
        } else {
            f32_slice(&grad)
        };
        let (dx, dgamma, dbeta) = kestrel_kernels::batch_norm::train_backward_nchw(
            &if shape.len() == 4 {
                as_nchw(&x)
            } else {
                f32_slice(&x)
            },
            &grad,
            n,
            c,
            l,
            &f32_slice(&gamma),
            &f32_slice(&beta),
            &f32_slice(&mean),
            &f32_slice(&variance),
            epsilon as f32,
            bn_act_from_code(act),
        );
        (
            flex_vec(dx, shape),
            flex_vec(dgamma, vec![c]),
            flex_vec(dbeta, vec![c]),
        )
    }
}

#[derive(Debug)]
struct KestrelBatchNormBackward;

impl<B: Backend + KestrelBatchNorm> Backward<B, 3> for KestrelBatchNormBackward {
    /// x (checkpointed), gamma and beta (parameters, held), the batch statistics, epsilon, act.
    type State = (
        NodeId,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        f64,
        u8,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, gamma, beta, mean, variance, epsilon, act) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let (dx, dgamma, dbeta) =
            B::kestrel_bn_train_backward(x, gamma, beta, mean, variance, grad, epsilon, act);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, dgamma);
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, dbeta);
        }
    }
}

impl<B: Backend + KestrelBatchNorm, C: CheckpointStrategy> KestrelBatchNorm for Autodiff<B, C> {
    fn kestrel_bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: u8,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        use burn::backend::AutodiffBackend;
        let untracked = <Self as AutodiffBackend>::from_inner;
        match KestrelBatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let (g, b) = (gamma.primitive().clone(), beta.primitive().clone());
                let (y, mean, var) = B::kestrel_bn_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    act,
                );
                let y = prep.finish((x_state, g, b, mean.clone(), var.clone(), epsilon, act), y);
                (y, untracked(mean), untracked(var))
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, var) = B::kestrel_bn_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    act,
                );
                (prep.finish(y), untracked(mean), untracked(var))
            }
        }
    }
}

/// Whether [`batch_norm_act`] runs `bn` on `x` with kestrel's fused kernel: training mode (an
/// autodiff device and the layer not frozen, as burn's `BatchNorm::forward` decides), f32 on
/// flex, and an activation the kernel differentiates.
pub fn batch_norm_takes_kestrel_path<const D: usize>(
    bn: &burn::nn::BatchNorm,
    x: &Tensor<D>,
    act: KernelAct,
) -> bool {
    enabled()
        && D >= 2
        && bn_act_code(act).is_some()
        && x.dtype() == DType::F32
        && x.device().inner() == Device::flex()
        && x.device().is_autodiff()
        && bn.training.is_enabled()
}

/// `act(bn(x))` in inference mode (off autodiff, e.g. a training run's validation pass) as one
/// pass in `x`'s layout on flex, with burn's operations in burn's order (the same values);
/// `Err(x)` for other backends, dtypes or activations.
pub fn batch_norm_eval_act<const D: usize>(
    bn: &burn::nn::BatchNorm,
    x: Tensor<D>,
    act: KernelAct,
) -> Result<Tensor<D>, Tensor<D>> {
    let ours = enabled()
        && D == 4
        && x.dtype() == DType::F32
        && x.device().inner() == Device::flex()
        && !x.device().is_autodiff()
        && x.dims()[1] == bn.gamma.dims()[0];
    let Some(code) = bn_act_code(act).filter(|_| ours) else {
        return Err(x);
    };
    Ok(Tensor::<D>::from_dispatch(
        <Dispatch as KestrelBatchNorm>::kestrel_bn_eval(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.running_mean.value_sync().into_dispatch(),
            bn.running_var.value_sync().into_dispatch(),
            bn.epsilon,
            code,
        ),
    ))
}

/// `act(bn(x))` in training mode as one fused op each way (two passes forward, two backward),
/// updating `bn`'s running statistics as burn's `BatchNorm` does; `Err(x)` when
/// [`batch_norm_takes_kestrel_path`] says no, for the caller to run burn's ops.
pub fn batch_norm_act<const D: usize>(
    bn: &burn::nn::BatchNorm,
    x: Tensor<D>,
    act: KernelAct,
) -> Result<Tensor<D>, Tensor<D>> {
    if !batch_norm_takes_kestrel_path(bn, &x, act) {
        return Err(x);
    }
    let c = bn.gamma.dims()[0];
    if x.dims()[1] != c {
        return Err(x);
    }
    let code = bn_act_code(act).expect("checked above");
    let (y, mean, var) = <Dispatch as KestrelBatchNorm>::kestrel_bn_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
        code,
    );
    let (mean, var) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(var),
    );
    // burn's BatchNorm::forward_train, on the same (biased) batch variance.
    let device = mean.device();
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let m = bn.momentum;
    bn.running_mean.update(
        running_mean
            .mul_scalar(1.0 - m)
            .add(mean.detach().mul_scalar(m))
            .detach(),
    );
    bn.running_var.update(
        running_var
            .mul_scalar(1.0 - m)
            .add(var.detach().mul_scalar(m))
            .detach(),
    );
    Ok(Tensor::<D>::from_dispatch(y))
}
