//! AutoAugment / RandAugment / TrivialAugmentWide: draw structure and distributions against
//! torchvision's definitions (analytic expectations from its policies and tables), name parsing,
//! and robustness on RGB and grayscale images. Per-op pixel parity is in transforms_parity.rs.

use kestrel_data::augment::{
    apply_op, autocontrast, equalize, magnitudes, posterize, AugOp, AugmentSpace, AutoAugment,
    AutoAugmentKind, AutoAugmentPolicy, RandAugment, TrivialAugmentWide, RAND_OPS,
};
use kestrel_data::{DataError, Image};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn noise_image(h: usize, w: usize, c: usize, seed: u64) -> Image {
    let mut rng = StdRng::seed_from_u64(seed);
    let data = (0..h * w * c).map(|_| rng.random_range(20..200)).collect();
    Image::new(h, w, c, data)
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n)
}

/// `observed` within 5 standard errors of `expected`, for a mean of `n` draws with variance
/// `var`.
fn assert_mean(label: &str, observed: f64, expected: f64, var: f64, n: usize) {
    let se = (var / n as f64).sqrt().max(1e-9);
    assert!(
        (observed - expected).abs() <= 5.0 * se,
        "{label}: {observed} vs expected {expected} (se {se})"
    );
}

const DRAWS: usize = 28_000;

#[test]
fn randaugment_picks_ops_uniformly_with_fair_signs_and_fixed_magnitude() {
    let ra = RandAugment::new(1, 9, 31).unwrap();
    let size = (72, 96);
    let mut rng = StdRng::seed_from_u64(1);
    let mut counts = [0usize; 14];
    let (mut signed, mut negative) = (0usize, 0usize);
    for _ in 0..DRAWS {
        let ops = ra.sample(size, &mut rng);
        assert_eq!(ops.len(), 1);
        let (op, mag) = ops[0];
        counts[RAND_OPS.iter().position(|&o| o == op).unwrap()] += 1;
        match magnitudes(AugmentSpace::Standard, op, 31, size) {
            Some(t) => assert_eq!(mag.abs(), f64::from(t[9]).abs(), "{op:?}"),
            None => assert_eq!(mag, 0.0),
        }
        if op.signed() {
            signed += 1;
            negative += usize::from(mag < 0.0);
        }
    }
    let p = 1.0 / 14.0;
    for (i, &c) in counts.iter().enumerate() {
        let freq = c as f64 / DRAWS as f64;
        assert_mean(&format!("{:?}", RAND_OPS[i]), freq, p, p * (1.0 - p), DRAWS);
    }
    assert_mean("sign", negative as f64 / signed as f64, 0.5, 0.25, signed);
}

#[test]
fn randaugment_applies_num_ops_and_validates_magnitude() {
    let ra = RandAugment::new(3, 30, 31).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    assert_eq!(ra.sample((32, 32), &mut rng).len(), 3);
    let err = RandAugment::new(2, 31, 31).unwrap_err();
    assert!(
        matches!(err, DataError::Invalid(ref m) if m.contains("0..=30")),
        "{err}"
    );
    let zero = RandAugment::new(0, 9, 31).unwrap();
    let img = noise_image(16, 20, 3, 3);
    assert_eq!(zero.apply(&img, &mut rng).unwrap(), img);
}

#[test]
fn timm_style_magnitude_noise_centres_on_the_level() {
    // "rand-m9-mstd0.5": timm level 9 of 10 = bin 27 of 31 (27 degrees of rotation), noise
    // 0.5 levels = 1.5 bins, clipped to the table.
    let AutoAugmentKind::RandAugment(ra) = AutoAugmentKind::parse("rand-m9-n1-mstd0.5").unwrap()
    else {
        panic!("not RandAugment");
    };
    assert_eq!(
        (ra.num_ops, ra.magnitude, ra.num_magnitude_bins),
        (1, 27, 31)
    );
    assert!((ra.magnitude_std - 1.5).abs() < 1e-12);
    let mut rng = StdRng::seed_from_u64(4);
    let rotations: Vec<f64> = (0..40_000)
        .flat_map(|_| ra.sample((64, 64), &mut rng))
        .filter(|(op, _)| *op == AugOp::Rotate)
        .map(|(_, m)| m.abs())
        .collect();
    let (m, v) = mean_var(&rotations);
    // E[min(N(27, 1.5), 30)] = 27 - 0.013.
    assert_mean("rotation degrees", m, 26.987, v, rotations.len());
    assert!((v.sqrt() - 1.5).abs() < 0.15, "std {}", v.sqrt());
    assert!(rotations.iter().all(|&r| (0.0..=30.0).contains(&r)));
}

#[test]
fn trivialaugment_draws_op_and_bin_uniformly() {
    let ta = TrivialAugmentWide::new(31).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let mut counts = [0usize; 14];
    let mut rotate_fraction = Vec::new();
    for _ in 0..DRAWS {
        let (op, mag) = ta.sample((40, 40), &mut rng);
        counts[RAND_OPS.iter().position(|&o| o == op).unwrap()] += 1;
        if op == AugOp::Rotate {
            rotate_fraction.push(mag.abs() / 135.0);
        }
    }
    let p = 1.0 / 14.0;
    for &c in &counts {
        assert_mean(
            "op frequency",
            c as f64 / DRAWS as f64,
            p,
            p * (1.0 - p),
            DRAWS,
        );
    }
    // Bins 0..=30 uniform: the mean of bin/30 is 1/2 and its variance 32/360.
    let (m, _) = mean_var(&rotate_fraction);
    assert_mean("rotate bin", m, 0.5, 32.0 / 360.0, rotate_fraction.len());
}

/// Expected applications of each op per call: (1/25) Σ p over the slots that name it.
fn expected_op_rates(policy: AutoAugmentPolicy) -> Vec<(AugOp, f64)> {
    let subs = policy.sub_policies();
    AugOp::ALL
        .iter()
        .map(|&op| {
            let total: f64 = subs
                .iter()
                .flat_map(|s| s.iter())
                .filter(|(o, _, _)| *o == op)
                .map(|(_, p, _)| p)
                .sum();
            (op, total / subs.len() as f64)
        })
        .collect()
}

#[test]
fn autoaugment_applies_ops_at_the_policy_rates() {
    for policy in [
        AutoAugmentPolicy::ImageNet,
        AutoAugmentPolicy::Cifar10,
        AutoAugmentPolicy::Svhn,
    ] {
        assert_eq!(policy.sub_policies().len(), 25);
        let aa = AutoAugment::new(policy);
        let mut rng = StdRng::seed_from_u64(6);
        let draws: Vec<_> = (0..DRAWS).map(|_| aa.sample((32, 32), &mut rng)).collect();
        for (op, rate) in expected_op_rates(policy) {
            let per_call: Vec<f64> = draws
                .iter()
                .map(|ops| ops.iter().filter(|(o, _)| *o == op).count() as f64)
                .collect();
            let (m, v) = mean_var(&per_call);
            assert_mean(
                &format!("{} {op:?}", policy.name()),
                m,
                rate,
                v.max(1e-4),
                DRAWS,
            );
        }
        // Magnitudes come from the 10-bin table of the op, signed ops in both directions.
        for ops in &draws {
            for &(op, mag) in ops {
                if let Some(t) = magnitudes(AugmentSpace::Standard, op, 10, (32, 32)) {
                    assert!(t.iter().any(|&v| f64::from(v) == mag.abs()), "{op:?} {mag}");
                }
            }
        }
    }
}

#[test]
fn every_policy_runs_on_rgb_and_gray_images() {
    let names = [
        "autoaugment-imagenet",
        "autoaugment-cifar10",
        "autoaugment-svhn",
        "randaugment",
        "randaugment-n3-m15",
        "rand-m9-mstd0.5",
        "trivialaugment",
    ];
    for name in names {
        let aug = AutoAugmentKind::parse(name).unwrap();
        for (c, h, w) in [(3, 33, 47), (1, 28, 28), (3, 3, 3), (1, 1, 5)] {
            let img = noise_image(h, w, c, 7);
            for seed in 0..60 {
                let mut rng = StdRng::seed_from_u64(seed);
                let out = aug
                    .apply(&img, &mut rng)
                    .unwrap_or_else(|e| panic!("{name} on {c}x{h}x{w}: {e}"));
                assert_eq!((out.height, out.width, out.channels), (h, w, c));
                let mut again = StdRng::seed_from_u64(seed);
                assert_eq!(
                    aug.apply(&img, &mut again).unwrap(),
                    out,
                    "{name}: not deterministic"
                );
            }
        }
    }
}

#[test]
fn every_op_runs_at_the_ends_of_its_tables() {
    let img = noise_image(20, 30, 3, 8);
    for op in AugOp::ALL {
        for space in [AugmentSpace::Standard, AugmentSpace::Wide] {
            let table = magnitudes(space, op, 31, (20, 30)).unwrap_or_else(|| vec![0.0]);
            for &m in [table[0], table[table.len() - 1]].iter() {
                let signs: &[f64] = if op.signed() { &[1.0, -1.0] } else { &[1.0] };
                for s in signs {
                    let mag = f64::from(m) * s;
                    let out = apply_op(&img, op, mag, &[0])
                        .unwrap_or_else(|e| panic!("{op:?} {mag}: {e}"));
                    assert_eq!(out.data.len(), img.data.len());
                }
            }
        }
    }
    assert!(apply_op(&img, AugOp::Rotate, f64::NAN, &[0]).is_err());
    assert!(
        apply_op(&img, AugOp::Brightness, -2.0, &[0]).is_err(),
        "negative factor"
    );
}

#[test]
fn pil_pixel_ops_edge_cases() {
    let flat = Image::new(4, 4, 1, vec![77; 16]);
    assert_eq!(
        equalize(&flat).unwrap(),
        flat,
        "equalize of one level is identity"
    );
    assert_eq!(
        autocontrast(&flat).unwrap(),
        flat,
        "autocontrast of one level is identity"
    );
    let full = Image::new(1, 4, 1, vec![0, 10, 200, 255]);
    assert_eq!(autocontrast(&full).unwrap(), full);
    let stretched = autocontrast(&Image::new(1, 3, 1, vec![50, 100, 150])).unwrap();
    assert_eq!(stretched.data, vec![0, 127, 255]);
    assert!(posterize(&flat, 0).is_err());
    assert_eq!(posterize(&flat, 8).unwrap(), flat);
    assert_eq!(posterize(&flat, 1).unwrap().data[0], 0);
}

#[test]
fn names_parse_and_unknown_names_list_the_valid_ones() {
    for (name, expect) in [
        ("autoaugment", "AutoAugment"),
        ("original", "AutoAugment"),
        ("ra", "RandAugment"),
        ("randaugment-n2-m9", "RandAugment"),
        ("RandAugment-m5-n1-b11", "RandAugment"),
        ("rand-m7-n3", "RandAugment"),
        ("ta_wide", "TrivialAugmentWide"),
    ] {
        let kind = AutoAugmentKind::parse(name).unwrap();
        assert!(format!("{kind:?}").starts_with(expect), "{name}: {kind:?}");
    }
    let AutoAugmentKind::RandAugment(ra) = AutoAugmentKind::parse("rand-m7-n3").unwrap() else {
        panic!()
    };
    assert_eq!((ra.num_ops, ra.magnitude), (3, 21));
    for bad in [
        "augmix",
        "autoaugment-coco",
        "rand-m11",
        "rand-m9-inc1",
        "randaugment-m40",
        "randaugment-x2",
        "rand-mfoo",
        "",
    ] {
        match AutoAugmentKind::parse(bad) {
            Err(DataError::Invalid(msg)) => {
                assert!(
                    msg.contains("valid") || msg.contains("range"),
                    "{bad}: message does not say what is valid: {msg}"
                )
            }
            other => panic!("{bad}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn bad_images_are_errors_not_panics() {
    let broken = Image {
        height: 4,
        width: 4,
        channels: 3,
        data: vec![0; 5],
    };
    let mut rng = StdRng::seed_from_u64(0);
    for name in ["autoaugment", "randaugment", "trivialaugment"] {
        assert!(AutoAugmentKind::parse(name)
            .unwrap()
            .apply(&broken, &mut rng)
            .is_err());
    }
    // Degenerate arguments to the transform helpers are errors or empty results, not panics.
    use kestrel_data::transforms::{crop, resize, RandomResizedCrop};
    let rrc = RandomResizedCrop::with_defaults((8, 8)).unwrap();
    assert_eq!(rrc.get_params(0, 0, &mut rng).height, 0);
    assert!(rrc.apply(&broken, &mut rng).is_err());
    let img = Image::new(2, 2, 1, vec![1, 2, 3, 4]);
    assert_eq!(crop(&img, i64::MAX - 1, 0, 1, 1).unwrap().data, vec![0]);
    assert_eq!(crop(&img, 0, i64::MIN + 1, 1, 1).unwrap().data, vec![0]);
    assert!(crop(&img, 0, 0, 0, 1).is_err());
    assert!(resize(&img, 0, 3, kestrel_data::Interpolation::Bicubic).is_err());
    let four = Image::new(2, 2, 4, vec![0; 16]);
    assert!(apply_op(&four, AugOp::Color, 0.5, &[0]).is_err());
    assert!(
        apply_op(&four, AugOp::Rotate, 10.0, &[1, 2, 3]).is_err(),
        "fill/channel mismatch"
    );
}
