//! Every family trains: a shrunk model on `Device::flex().autodiff()` takes ~10 AdamW steps on a
//! fixed tiny batch and its loss must drop. This exercises BatchNorm in training mode, grouped and
//! depthwise conv backward, LayerNorm backward, stochastic depth and dropout.
//!
//! One line per family: `name: (|device| build a shrunk Model, [C, H, W], learning rate)`.
//! Rows with drop-path / dropout > 0 check that the regularised forward still learns.

use kestrel_models::burn::nn::loss::CrossEntropyLossConfig;
use kestrel_models::burn::optim::{AdamWConfig, GradientsParams};
use kestrel_models::burn::prelude::*;
use kestrel_models::burn::tensor::{Int, TensorData};
use kestrel_models::convnext::ConvNeXtConfig;
use kestrel_models::lenet::LeNet5;
use kestrel_models::resnet::ResNetConfig;
use kestrel_models::Model;

const CLASSES: usize = 10;
const BATCH: usize = 8;
const STEPS: usize = 10;

/// Runs STEPS AdamW steps on one fixed batch; returns (first loss, last loss).
fn train(build: fn(&Device) -> Model, [c, h, w]: [usize; 3], lr: f64) -> (f32, f32) {
    let device = Device::flex().autodiff();
    device.seed(7);
    let mut model = build(&device);
    // Deterministic inputs (an LCG, independent of the backend's RNG) and labels 0..7.
    let mut s: u32 = 12345;
    let pixels: Vec<f32> = (0..BATCH * c * h * w)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [BATCH, c, h, w]), &device);
    let labels: Vec<i64> = (0..BATCH as i64).map(|i| i % CLASSES as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [BATCH]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
    }
    // The loss after the last step, measured like the others.
    let last = loss_fn.forward(model.forward(x), y).into_scalar::<f32>();
    (losses[0], last)
}

macro_rules! train_rows {
    ($($name:ident: ($build:expr, $input:expr, $lr:expr)),* $(,)?) => {$(
        #[test]
        fn $name() {
            let (first, last) = train($build, $input, $lr);
            eprintln!("{}: loss {first:.4} -> {last:.4}", stringify!($name));
            assert!(first.is_finite() && last.is_finite(), "non-finite loss");
            assert!(last < 0.7 * first, "loss did not drop: {first} -> {last}");
        }
    )*};
}

fn resnet_tiny(base: ResNetConfig) -> ResNetConfig {
    ResNetConfig {
        layers: vec![1, 1, 1, 1],
        widths: vec![8, 16, 32, 64],
        stem_width: 16,
        ..base
    }
}

fn convnext_tiny(base: ConvNeXtConfig) -> ConvNeXtConfig {
    ConvNeXtConfig {
        depths: vec![1, 1, 2, 1],
        dims: vec![8, 16, 32, 64],
        // timm's 1e-6 layer scale leaves the blocks ~identity for the first steps; a larger
        // init makes the blocks (and their drop-path) part of what is trained here.
        ls_init_value: Some(0.5),
        ..base
    }
    .with_drop_path_rate(0.2)
    .with_drop_rate(0.1)
}

train_rows! {
    lenet5: (|d| Model::LeNet5(LeNet5::new(CLASSES, 1, d)), [1, 32, 32], 3e-3),
    resnet_basic: (|d| Model::ResNet(resnet_tiny(ResNetConfig::resnet18()).init(CLASSES, 3, d)), [3, 32, 32], 3e-3),
    resnet_bottleneck: (|d| Model::ResNet(resnet_tiny(ResNetConfig::resnet50()).init(CLASSES, 3, d)), [3, 32, 32], 3e-3),
    resnext_grouped: (|d| Model::ResNet(ResNetConfig { groups: 4, base_width: 16, ..resnet_tiny(ResNetConfig::resnext50_32x4d()) }.init(CLASSES, 3, d)), [3, 32, 32], 3e-3),
    resnet_cifar: (|d| Model::ResNet(ResNetConfig::cifar(1).init(CLASSES, 3, d)), [3, 32, 32], 3e-3),
    convnext_conv_mlp: (|d| Model::ConvNeXt(convnext_tiny(ConvNeXtConfig::atto()).init(CLASSES, 3, d)), [3, 64, 64], 3e-3),
    convnext_linear_mlp: (|d| Model::ConvNeXt(convnext_tiny(ConvNeXtConfig::tiny()).init(CLASSES, 3, d)), [3, 64, 64], 3e-3),
}
