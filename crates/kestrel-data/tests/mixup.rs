//! Mixup / CutMix against timm's `Mixup` semantics: Beta(α, α) lambda distribution (analytic
//! mean 1/2 and variance 1/(4(2α+1))), probabilities, the flipped-batch mixing, CutMix box and
//! lambda correction, and smoothed soft targets checked against values computed by hand.

use kestrel_data::mixup::{
    mixup_target, rand_bbox, rand_bbox_minmax, sample_beta, Mixup, MixupConfig, MixupMode,
};
use kestrel_data::DataError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n)
}

fn assert_mean(label: &str, observed: f64, expected: f64, var: f64, n: usize) {
    let se = (var / n as f64).sqrt().max(1e-9);
    assert!(
        (observed - expected).abs() <= 5.0 * se,
        "{label}: {observed} vs {expected} (se {se})"
    );
}

fn cfg(mixup_alpha: f64, cutmix_alpha: f64) -> MixupConfig {
    MixupConfig {
        mixup_alpha,
        cutmix_alpha,
        label_smoothing: 0.0,
        ..MixupConfig::default()
    }
}

fn batch(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n * c * h * w)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect()
}

#[test]
fn beta_draws_have_the_beta_mean_and_variance() {
    for alpha in [0.2, 0.4, 0.8, 1.0, 2.0, 5.0] {
        let mut rng = StdRng::seed_from_u64(1);
        let draws: Vec<f64> = (0..60_000)
            .map(|_| sample_beta(&mut rng, alpha, alpha))
            .collect();
        assert!(draws.iter().all(|&x| (0.0..=1.0).contains(&x)));
        let (m, v) = mean_var(&draws);
        let var = 1.0 / (4.0 * (2.0 * alpha + 1.0));
        assert_mean(&format!("Beta({alpha}) mean"), m, 0.5, var, draws.len());
        assert!(
            (v - var).abs() <= 0.04 * var,
            "Beta({alpha}) var {v} vs {var}"
        );
    }
    // An asymmetric one, to check the general path: Beta(2, 5) has mean 2/7.
    let mut rng = StdRng::seed_from_u64(2);
    let draws: Vec<f64> = (0..60_000)
        .map(|_| sample_beta(&mut rng, 2.0, 5.0))
        .collect();
    let (m, _) = mean_var(&draws);
    let var = 10.0 / (49.0 * 8.0);
    assert_mean("Beta(2,5) mean", m, 2.0 / 7.0, var, draws.len());
}

#[test]
fn batch_params_follow_prob_switch_prob_and_alpha() {
    let mix = Mixup::new(
        MixupConfig {
            prob: 0.6,
            switch_prob: 0.3,
            ..cfg(0.8, 1.0)
        },
        10,
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let draws: Vec<_> = (0..40_000)
        .map(|_| mix.params_per_batch(&mut rng))
        .collect();
    let mixed: Vec<_> = draws.iter().filter(|p| p.lam != 1.0).collect();
    let n = draws.len();
    assert_mean("prob", mixed.len() as f64 / n as f64, 0.6, 0.24, n);
    let cut: Vec<f64> = mixed
        .iter()
        .filter(|p| p.use_cutmix)
        .map(|p| p.lam)
        .collect();
    let mix_only: Vec<f64> = mixed
        .iter()
        .filter(|p| !p.use_cutmix)
        .map(|p| p.lam)
        .collect();
    assert_mean(
        "switch_prob",
        cut.len() as f64 / mixed.len() as f64,
        0.3,
        0.21,
        mixed.len(),
    );
    // Cutmix lambdas are Beta(1, 1) (var 1/12), mixup ones Beta(0.8, 0.8) (var 1/10.4).
    let (mc, vc) = mean_var(&cut);
    let (mm, vm) = mean_var(&mix_only);
    assert_mean("cutmix lam", mc, 0.5, 1.0 / 12.0, cut.len());
    assert_mean("mixup lam", mm, 0.5, 1.0 / 10.4, mix_only.len());
    assert!((vc - 1.0 / 12.0).abs() < 0.006 && (vm - 1.0 / 10.4).abs() < 0.006);
}

#[test]
fn smoothed_targets_match_hand_computed_timm_values() {
    // timm: off = 0.1 / 5 = 0.02, on = 1 - 0.1 + 0.02 = 0.92; rows mix with the reversed batch.
    let labels = [0usize, 3, 1, 4];
    let t = mixup_target(&labels, 5, &[0.7], 0.1).unwrap();
    let (on, off) = (0.92f32, 0.02f32);
    let row = |mine: usize, theirs: usize| -> Vec<f32> {
        (0..5)
            .map(|k| {
                let y1 = if k == mine { on } else { off };
                let y2 = if k == theirs { on } else { off };
                y1 * 0.7 + y2 * 0.3
            })
            .collect()
    };
    let expected: Vec<f32> = [row(0, 4), row(3, 1), row(1, 3), row(4, 0)].concat();
    assert_eq!(t, expected);
    // By hand: row 0 is [0.65, 0.02, 0.02, 0.02, 0.29].
    let by_hand = [0.65f32, 0.02, 0.02, 0.02, 0.29];
    for (a, b) in t[..5].iter().zip(by_hand) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    for r in t.chunks(5) {
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    // Same label on both sides: all mass on it.
    let same = mixup_target(&[2, 2], 3, &[0.3], 0.0).unwrap();
    assert_eq!(same, vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn mixup_blends_each_sample_with_its_mirror() {
    let (n, c, h, w) = (4, 2, 3, 5);
    let orig = batch(n, c, h, w, 4);
    let mix = Mixup::new(cfg(1.0, 0.0), 4).unwrap();
    let labels = [0usize, 1, 2, 3];
    let mut rng = StdRng::seed_from_u64(5);
    let mut x = orig.clone();
    let targets = mix.apply(&mut x, [n, c, h, w], &labels, &mut rng).unwrap();
    let lam = f64::from(targets[0]); // row 0: lam on class 0, 1 - lam on class 3
    assert!((targets[3] as f64 - (1.0 - lam)).abs() < 1e-6);
    let s = c * h * w;
    for i in 0..n {
        let j = n - 1 - i;
        for k in 0..s {
            let want = orig[i * s + k] * lam as f32 + orig[j * s + k] * (1.0 - lam) as f32;
            assert!((x[i * s + k] - want).abs() < 1e-5);
        }
    }
    for r in targets.chunks(4) {
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}

#[test]
fn cutmix_pastes_one_box_from_the_mirror_and_corrects_lambda() {
    let (n, c, h, w) = (6, 3, 16, 20);
    let orig = batch(n, c, h, w, 6);
    let mix = Mixup::new(cfg(0.0, 1.0), 6).unwrap();
    let labels = [0usize, 1, 2, 3, 4, 5];
    for seed in 0..200 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = orig.clone();
        let targets = mix.apply(&mut x, [n, c, h, w], &labels, &mut rng).unwrap();
        let lam = f64::from(targets[0]);
        let s = c * h * w;
        let mut swapped = 0usize;
        for i in 0..n {
            let j = n - 1 - i;
            for k in 0..s {
                if x[i * s + k] != orig[i * s + k] {
                    assert_eq!(x[i * s + k], orig[j * s + k], "pasted from the mirror");
                    swapped += 1;
                }
            }
        }
        // correct_lam: 1 - lam is exactly the pasted fraction (values are distinct floats).
        let frac = swapped as f64 / (n * s) as f64;
        assert!(
            (1.0 - lam - frac).abs() < 1e-6,
            "seed {seed}: lam {lam}, pasted {frac}"
        );
    }
}

#[test]
fn cutmix_boxes_stay_inside_and_minmax_bounds_the_sides() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..2000 {
        let lam: f64 = rng.random();
        let b = rand_bbox(24, 32, lam, &mut rng);
        assert!(b.y0 <= b.y1 && b.y1 <= 24 && b.x0 <= b.x1 && b.x1 <= 32);
        assert!(b.y1 - b.y0 <= (24.0 * (1.0 - lam).sqrt()) as usize + 1);
        let m = rand_bbox_minmax(24, 32, [0.2, 0.8], &mut rng).unwrap();
        let (bh, bw) = (m.y1 - m.y0, m.x1 - m.x0);
        assert!((4..19).contains(&bh) && (6..25).contains(&bw), "{m:?}");
        assert!(m.y1 <= 24 && m.x1 <= 32);
    }
    assert!(rand_bbox_minmax(2, 2, [0.2, 0.3], &mut rng).is_err());
}

#[test]
fn pair_and_elem_modes_give_per_sample_lambdas() {
    let (n, c, h, w) = (8, 1, 4, 4);
    let labels: Vec<usize> = (0..n).collect();
    for mode in [MixupMode::Pair, MixupMode::Elem] {
        let mix = Mixup::new(
            MixupConfig {
                mode,
                ..cfg(1.0, 1.0)
            },
            n,
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(8);
        let mut x = batch(n, c, h, w, 9);
        let t = mix.apply(&mut x, [n, c, h, w], &labels, &mut rng).unwrap();
        let lams: Vec<f32> = (0..n).map(|i| t[i * n + i]).collect();
        for (i, r) in t.chunks(n).enumerate() {
            assert!(
                (r.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "{mode:?} row {i}"
            );
            assert!((r[n - 1 - i] - (1.0 - lams[i])).abs() < 1e-6);
        }
        if mode == MixupMode::Pair {
            for i in 0..n / 2 {
                assert_eq!(lams[i], lams[n - 1 - i], "pairs share lambda");
            }
        } else {
            let distinct = lams.iter().any(|&l| l != lams[0]);
            assert!(distinct, "elem mode draws per element: {lams:?}");
        }
    }
}

#[test]
fn bad_inputs_and_configs_are_invalid() {
    let mix = Mixup::new(cfg(1.0, 0.0), 3).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let mut x = vec![0f32; 3 * 4];
    let odd = mix.apply(&mut x, [3, 1, 2, 2], &[0, 1, 2], &mut rng);
    assert!(matches!(odd, Err(DataError::Invalid(_))), "odd batch");
    let mut x = vec![0f32; 2 * 4];
    assert!(
        mix.apply(&mut x, [2, 1, 2, 3], &[0, 1], &mut rng).is_err(),
        "shape"
    );
    assert!(
        mix.apply(&mut x, [2, 1, 2, 2], &[0, 7], &mut rng).is_err(),
        "label range"
    );
    assert!(
        mix.apply(&mut x, [2, 1, 2, 2], &[0], &mut rng).is_err(),
        "label count"
    );
    for bad in [
        cfg(0.0, 0.0),
        cfg(-1.0, 0.0),
        MixupConfig {
            prob: 1.5,
            ..cfg(1.0, 0.0)
        },
        MixupConfig {
            label_smoothing: -0.1,
            ..cfg(1.0, 0.0)
        },
        MixupConfig {
            cutmix_minmax: Some([0.8, 0.2]),
            ..cfg(1.0, 0.0)
        },
    ] {
        assert!(
            matches!(Mixup::new(bad.clone(), 3), Err(DataError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(Mixup::new(cfg(1.0, 0.0), 0).is_err());
    assert!(
        sample_beta(&mut rng, -1.0, 1.0).is_nan(),
        "no endless rejection loop"
    );
    assert!(sample_beta(&mut rng, f64::NAN, 2.0).is_nan());
    assert!(rand_bbox_minmax(10, 10, [0.2, 1.5], &mut rng).is_err());
}
