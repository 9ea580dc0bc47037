//! Training smoke tests for MobileNet, ShuffleNetV2, VGG-BN and AlexNet: a few AdamW steps on a
//! fixed batch of 8 random 32×32 images (64×64 for AlexNet's 11×11/4 stem) must lower the loss. This runs BN in training mode,
//! depthwise and grouped conv backward, stochastic depth and dropout.

use kestrel_models::alexnet::AlexNetConfig;
use kestrel_models::burn::nn::loss::CrossEntropyLossConfig;
use kestrel_models::burn::optim::{AdamWConfig, GradientsParams};
use kestrel_models::burn::prelude::*;
use kestrel_models::burn::tensor::{Distribution, TensorData};
use kestrel_models::mobilenet::MobileNetConfig;
use kestrel_models::shufflenet::ShuffleNetV2Config;
use kestrel_models::vgg::{VggConfig, VggItem};
use kestrel_models::Model;

/// Returns (first loss, last loss) over `steps` AdamW steps.
fn train(build: impl Fn(&Device) -> Model, steps: usize) -> (f32, f32) {
    train_at(32, build, steps)
}

fn train_at(size: usize, build: impl Fn(&Device) -> Model, steps: usize) -> (f32, f32) {
    let device = Device::flex().autodiff();
    let mut model = build(&device);
    let x = Tensor::<4>::random([8, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<1, Int>::from_data(TensorData::from([0i64, 1, 2, 3, 4, 5, 6, 7]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = AdamWConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    (losses[0], *losses.last().unwrap())
}

fn assert_learns(name: &str, (first, last): (f32, f32)) {
    eprintln!("{name}: loss {first:.3} -> {last:.3}");
    assert!(last < 0.7 * first, "{name}: loss {first} -> {last}");
}

#[test]
fn mobilenetv3_trains_with_drop_path_and_dropout() {
    assert_learns(
        "mobilenetv3_large",
        train(
            |d| {
                let mut cfg = MobileNetConfig::mobilenet_v3_large(0.25);
                cfg.depth_multiplier = 0.34;
                cfg.num_features = 64;
                cfg.drop_rate = 0.2;
                cfg.builder.drop_path_rate = 0.1;
                Model::MobileNet(cfg.init(10, 3, d))
            },
            12,
        ),
    );
}

#[test]
fn mobilenetv2_trains() {
    assert_learns(
        "mobilenetv2",
        train(
            |d| {
                let mut cfg = MobileNetConfig::mobilenet_v2(0.25);
                cfg.depth_multiplier = 0.34;
                cfg.num_features = 64;
                Model::MobileNet(cfg.init(10, 3, d))
            },
            12,
        ),
    );
}

#[test]
fn shufflenet_v2_trains() {
    assert_learns(
        "shufflenet_v2",
        train(
            |d| {
                let cfg = ShuffleNetV2Config {
                    stages_repeats: vec![2, 2, 2],
                    stages_out_channels: vec![8, 16, 32, 64, 128],
                };
                Model::ShuffleNetV2(cfg.init(10, 3, d))
            },
            12,
        ),
    );
}

#[test]
fn vgg_bn_and_alexnet_train() {
    assert_learns(
        "vgg11_bn",
        train(
            |d| {
                let mut cfg = VggConfig::vgg11(true);
                for item in &mut cfg.cfg {
                    if let VggItem::Conv(c) = item {
                        *c = (*c / 16).min(32);
                    }
                }
                cfg.hidden = 32;
                cfg.dropout = 0.1;
                Model::Vgg(cfg.init(10, 3, d))
            },
            20,
        ),
    );
    assert_learns(
        "alexnet",
        train_at(
            64,
            |d| {
                let cfg = AlexNetConfig {
                    widths: [16, 32, 48, 32, 32],
                    hidden: 64,
                    dropout: 0.1,
                };
                Model::AlexNet(cfg.init(10, 3, d))
            },
            20,
        ),
    );
}
