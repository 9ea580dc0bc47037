//! The wgpu backend against timm, on the same shrunk fixtures as the CPU parity tests: one per
//! kind of layer (conv + BN, depthwise inverted residuals, LayerNorm with a 7×7 depthwise conv,
//! attention). Each takes 20-30 s on lavapipe, nearly all of it compiling kernels, so the list
//! stops at one fixture per kind (Swin's windows are burn ops that ViT's test already runs
//! through matmul and softmax). CI runs them on Mesa's software
//! Vulkan device (lavapipe, `.ci/run` installs `mesa-vulkan-drivers`); on a machine without a GPU
//! driver they are skipped, except under `CI=true`, where a missing device is a failure.

use crate::common;

use common::{assert_logits_match, fixture, input_tensor, load_fixture_weights};
use kestrel_models::burn::prelude::*;
use kestrel_models::burn::tensor::DeviceType;
use kestrel_models::convnext::ConvNeXtConfig;
use kestrel_models::mobilenet::MobileNetConfig;
use kestrel_models::resnet::ResNetConfig;
use kestrel_models::Model;

/// The default wgpu device, or `None` (skip) when no adapter is visible outside CI.
fn gpu() -> Option<Device> {
    if Device::enumerate(DeviceType::Wgpu).into_vec().is_empty() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !in_ci,
            "CI=true but no wgpu adapter is visible: .ci/run installs mesa-vulkan-drivers"
        );
        eprintln!("skipped: no wgpu adapter (CI would fail)");
        return None;
    }
    Some(Device::wgpu(
        kestrel_models::burn::tensor::DeviceKind::DefaultDevice,
    ))
}

/// Loads fixture `name` into `build(device)` on the GPU and checks its logits against timm's
/// with the CPU tests' bar (1e-4 × max|logit|).
fn check(name: &str, build: impl FnOnce(&Device) -> Model) {
    let Some(device) = gpu() else { return };
    let dir = fixture(name);
    let model = load_fixture_weights(build(&device), &dir, "weights.safetensors");
    assert_logits_match(model.forward(input_tensor(&dir, &device)), &dir);
}

#[test]
fn resnet18_on_wgpu_matches_timm() {
    check("resnet18_tiny", |d| {
        Model::ResNet(crate::resnet_parity::tiny(ResNetConfig::resnet18()).init(10, 3, d))
    });
}

#[test]
fn mobilenetv2_depthwise_on_wgpu_matches_timm() {
    check("mobilenetv2_tiny", |d| {
        let cfg = crate::mobilenet_parity::tiny(MobileNetConfig::mobilenet_v2, Some(64));
        Model::MobileNet(cfg.init(10, 3, d))
    });
}

#[test]
fn convnext_layernorm_on_wgpu_matches_timm() {
    check("convnext_atto_tiny", |d| {
        Model::ConvNeXt(crate::convnext_parity::tiny(ConvNeXtConfig::atto()).init(10, 3, d))
    });
}

#[test]
fn vit_attention_on_wgpu_matches_timm() {
    check("vit_tiny_patch16_224_tiny", |d| {
        Model::Vit(common::vit_fixture_config().init(10, 3, d))
    });
}
