//! Training smoke test: SE / ECA / CBAM ResNets learn a fixed tiny batch (BN in training mode,
//! attention backward).

use kestrel_models::attention::AttnKind;
use kestrel_models::burn::nn::loss::CrossEntropyLossConfig;
use kestrel_models::burn::optim::{AdamWConfig, GradientsParams};
use kestrel_models::burn::prelude::*;
use kestrel_models::burn::tensor::TensorData;
use kestrel_models::resnet::ResNetConfig;
use kestrel_models::Model;

/// 8 fixed pseudo-random 3×32×32 images with labels 0..7 (deterministic LCG, no RNG seeding).
fn batch(device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let data: Vec<f32> = (0..8 * 3 * 32 * 32)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let x = Tensor::from_data(TensorData::new(data, [8, 3, 32, 32]), device);
    let y = Tensor::from_data(TensorData::new((0..8i64).collect(), [8]), device);
    (x, y)
}

fn loss_drops(mut model: Model, device: &Device, steps: usize) {
    let (x, y) = batch(device);
    let ce = CrossEntropyLossConfig::new().init(device);
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = ce.forward(model.forward(x.clone()), y.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(3e-3, model, grads);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.7 * first, "loss did not drop: {losses:?}");
}

fn tiny(base: ResNetConfig, attn: AttnKind) -> ResNetConfig {
    ResNetConfig {
        layers: vec![1, 1, 1, 1],
        widths: vec![8, 16, 32, 64],
        attn: Some(attn),
        ..base
    }
}

#[test]
fn attention_resnets_train() {
    let device = Device::flex().autodiff();
    for attn in [AttnKind::Se, AttnKind::Eca, AttnKind::Cbam] {
        let model = Model::ResNet(tiny(ResNetConfig::resnet18(), attn).init(10, 3, &device));
        loss_drops(model, &device, 12);
    }
}
