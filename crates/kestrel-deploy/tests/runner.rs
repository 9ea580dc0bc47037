//! The fast engine against burn's forward on whole registry architectures (random weights, BN
//! statistics perturbed so folding is exercised), and the fallback for families it does not
//! lower. Parity with timm itself is checked on every committed fixture by kestrel-models'
//! parity tests, which run both engines.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use kestrel_deploy::{EngineKind, Runner};
use kestrel_models::BuildOptions;

/// Replaces every float parameter and buffer by a random value near its own scale, so that BN
/// means, variances and affine terms are all non-trivial.
struct Perturb;
impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, t, mapper) = param.consume();
        let noise = Tensor::random(t.shape(), Distribution::Uniform(0.5, 1.5), &t.device());
        Param::from_mapped_value(id, t.clone() * noise + 0.01, mapper)
    }
}

fn check(name: &str, size: usize) {
    check_batch(name, size, 2)
}

fn check_batch(name: &str, size: usize, batch: usize) {
    // Read by `forced_avx2_and_portable_kernels_match_burn` in its child processes.
    println!(
        "kernels: {}, avx512 {}",
        kestrel_kernels::Isa::detect().name(),
        kestrel_kernels::avx512()
    );
    let device = Device::flex();
    let spec = kestrel_models::find(name).unwrap();
    let model = spec
        .build(
            &BuildOptions {
                num_classes: 10,
                ..spec.default_options()
            },
            &device,
        )
        .map(&mut Perturb)
        .valid();
    let x: Tensor<4> = Tensor::random(
        [batch, spec.default_options().in_chans, size, size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let want: Vec<f32> = model.forward(x.clone()).into_data().try_to_vec().unwrap();
    let in_ch = spec.default_options().in_chans;
    let (runner, notice) = Runner::new(model, in_ch, &device, EngineKind::Fast);
    assert!(notice.is_none(), "{name}: {notice:?}");
    assert_eq!(runner.name(), "fast");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    // Twice: the first batch at a size also decides how later ones are split.
    for call in 1..=2 {
        let got: Vec<f32> = runner
            .forward(x.clone())
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-4 * scale,
            "{name}: fast vs burn max error {err} on call {call}, max|logit| {scale}"
        );
    }
}

#[test]
fn resnets_match_burn() {
    check("resnet18", 64);
    check("resnet50", 64);
    check("seresnet50", 64);
    check("resnext50_32x4d", 64);
    check("resnet20_cifar", 32);
}

#[test]
fn mobile_families_match_burn() {
    check("mobilenetv2_100", 64);
    check("mobilenetv3_large_100", 64);
    check("efficientnet_b0", 64);
    // TF "same" padding on an odd size.
    check("tf_efficientnet_b0", 65);
}

/// At 224 px one mobilenetv2 image's largest map (112²×96) is past the engine's chunk budget,
/// so a batch runs image by image: the first alone, then one per thread, the odd one left
/// across all threads. Its expand → depthwise → project blocks at 112² and 56² run fused band
/// by band, and efficientnet's expand → depthwise pairs (SE before the projection) likewise.
/// Every image's logits must still be burn's, on the first call (which learns the chunk size)
/// and on the next.
#[test]
fn fused_blocks_and_a_batch_split_into_cache_sized_chunks_match_burn() {
    check_batch("mobilenetv2_100", 224, 6);
    check_batch("efficientnet_b0", 224, 2);
}

#[test]
fn convnext_matches_burn() {
    check("convnext_atto", 64);
}

#[test]
fn plain_convnets_match_burn() {
    check("vgg11_bn", 64);
    check("alexnet", 96);
    check("lenet5", 32);
    check("regnety_002", 64);
}

#[test]
fn unsupported_family_falls_back_to_burn_with_a_reason() {
    let device = Device::flex();
    let model = kestrel_models::find("shufflenet_v2_x1_0").unwrap().build(
        &BuildOptions {
            num_classes: 10,
            in_chans: 3,
            img_size: None,
        },
        &device,
    );
    let (runner, notice) = Runner::new(model.clone(), 3, &device, EngineKind::Fast);
    assert_eq!(runner.name(), "burn");
    let notice = notice.expect("a fallback notice");
    assert!(notice.contains("ShuffleNetV2"), "{notice}");
    // And burn's answer is what comes back.
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(vec![0.1f32; 3 * 32 * 32], [1, 3, 32, 32]),
        &device,
    );
    let a: Vec<f32> = runner
        .forward(x.clone())
        .unwrap()
        .into_data()
        .try_to_vec()
        .unwrap();
    let b: Vec<f32> = model.valid().forward(x).into_data().try_to_vec().unwrap();
    assert_eq!(a, b);
}

#[test]
fn wrong_channel_count_is_an_error() {
    let device = Device::flex();
    let model = kestrel_models::find("resnet18").unwrap().build(
        &BuildOptions {
            num_classes: 10,
            in_chans: 3,
            img_size: None,
        },
        &device,
    );
    let engine = kestrel_deploy::lower(&model, 3).unwrap();
    let err = engine
        .run_nchw(&vec![0.0; 32 * 32], 1, 1, 32, 32)
        .unwrap_err();
    assert!(
        err.contains("1 channels") && err.contains("expects 3"),
        "{err}"
    );
}

/// The kernels a CPU without AVX-512 (or without AVX2) would run, forced with `KESTREL_ISA` in
/// a child process (the ISA is read once per process): the same fast-vs-burn checks must pass
/// on the AVX2 kernels and on the portable ones. Each check prints the kernels it ran, so a child
/// that ignored the variable, or ran no test, fails here.
#[test]
fn forced_avx2_and_portable_kernels_match_burn() {
    if std::env::var_os("KESTREL_ISA").is_some() {
        return; // the child itself: the listed tests are what it runs
    }
    let exe = std::env::current_exe().expect("test executable");
    for (isa, want_name) in [("avx2", "avx2+fma"), ("scalar", "scalar")] {
        if isa == "avx2" && !cpu_has_avx2() {
            continue;
        }
        let out = std::process::Command::new(&exe)
            .env("KESTREL_ISA", isa)
            .args([
                "--exact",
                "runner::resnets_match_burn",
                "runner::mobile_families_match_burn",
                "runner::convnext_matches_burn",
                "--test-threads",
                "1",
                "--nocapture",
            ])
            .output()
            .expect("run the test executable");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "KESTREL_ISA={isa}: the fast engine failed its checks\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("3 passed"),
            "KESTREL_ISA={isa}: the child did not run the three tests\n{stdout}"
        );
        let line = format!("kernels: {want_name}, avx512 false");
        assert!(
            stdout.contains(&line) || stderr.contains(&line),
            "KESTREL_ISA={isa}: the child did not run the {want_name} kernels\n{stdout}\n{stderr}"
        );
    }
}

fn cpu_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}
