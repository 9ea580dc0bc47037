//! RegNetX / RegNetY logits against timm on shrunk models (timm kwargs w0=8, wa=8, wm=2,
//! depth=6, group_size=8, stem_width=16: stages of widths 8/16/32/64, depths 1/1/3/1).

use crate::common;

use common::{check_fixture, fixture};
use kestrel_models::burn::prelude::*;
use kestrel_models::regnet::RegNetConfig;
use kestrel_models::weights::save_safetensors;
use kestrel_models::Model;

fn tiny(se: bool) -> RegNetConfig {
    RegNetConfig {
        stem_width: 16,
        ..RegNetConfig::new(8, 8.0, 2.0, 8, 6, se)
    }
}

fn check(name: &str, cfg: RegNetConfig) -> Model {
    check_fixture(name, Model::RegNet(cfg.init(10, 3, &Device::flex())))
}

#[test]
fn regnetx_matches_timm() {
    check("regnetx_002_tiny", tiny(false));
}

#[test]
fn regnety_matches_timm() {
    check("regnety_002_tiny", tiny(true));
}

#[test]
fn regnet_saves_with_timm_names() {
    let model = check("regnety_002_tiny", tiny(true));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w.safetensors");
    save_safetensors(&model, &out).unwrap();
    let dir = fixture("regnety_002_tiny");
    assert_eq!(
        common::weight_names(&out),
        common::weight_names(&dir.join("weights.safetensors"))
    );
}

#[test]
fn width_generator_matches_timm() {
    // timm: [(w, d, g) for RegNet('regnety_032').s1..s4]
    let stages: Vec<(usize, usize, usize)> = RegNetConfig::by_name("regnety_032")
        .unwrap()
        .stages()
        .iter()
        .map(|s| (s.width, s.depth, s.group_size))
        .collect();
    assert_eq!(
        stages,
        vec![(72, 2, 24), (216, 5, 24), (576, 13, 24), (1512, 1, 24)]
    );
}

/// Reference: timm 1.0.31, sum(p.numel() for p in timm.create_model(name).parameters()).
const COUNTS: [(&str, usize); 22] = [
    ("regnetx_002", 2_684_792),
    ("regnetx_004", 5_157_512),
    ("regnetx_006", 6_196_040),
    ("regnetx_008", 7_259_656),
    ("regnetx_016", 9_190_136),
    ("regnetx_032", 15_296_552),
    ("regnetx_040", 22_118_248),
    ("regnetx_064", 26_209_256),
    ("regnetx_080", 39_572_648),
    ("regnetx_120", 46_106_056),
    ("regnetx_160", 54_278_536),
    ("regnety_002", 3_162_996),
    ("regnety_004", 4_344_144),
    ("regnety_006", 6_055_160),
    ("regnety_008", 6_263_168),
    ("regnety_016", 11_202_430),
    ("regnety_032", 19_436_338),
    ("regnety_040", 20_646_656),
    ("regnety_064", 30_583_252),
    ("regnety_080", 39_180_068),
    ("regnety_120", 51_822_544),
    ("regnety_160", 83_590_140),
];

fn check_counts(keep: impl Fn(usize) -> bool) {
    for (name, params) in COUNTS.into_iter().filter(|(_, p)| keep(*p)) {
        let spec = kestrel_models::find(name).unwrap();
        let model = spec.build(&spec.default_options(), &Device::flex());
        assert_eq!(model.num_trainable_params(), params, "{name}");
    }
}

#[test]
fn registered_regnets_have_timm_param_counts() {
    check_counts(|p| p < 12_000_000);
}

/// The larger ones: `cargo test --release -p kestrel-models -- --ignored`.
#[test]
#[ignore = "builds the RegNets of 12 M parameters and more (seconds each)"]
fn full_param_counts_regnet() {
    check_counts(|p| p >= 12_000_000);
}
