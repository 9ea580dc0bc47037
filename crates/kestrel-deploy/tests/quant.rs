//! Post-training int8 quantization of whole registry architectures: the int8 engine against
//! the fp32 engine (itself checked against burn and timm), the int8 file's size and round trip,
//! and the errors for a file of another model.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use kestrel_deploy::quant::{self, Calibration, Method, QuantOptions};
use kestrel_deploy::{lower_graph, Engine, Graph, Op};
use kestrel_models::BuildOptions;

/// The registry model with fixed weights. burn's RNG is global, so its random init (and any
/// random input) differs whenever other tests draw from it concurrently; the tolerances here
/// must hold for one known model, not for whichever the scheduling gives.
fn model(name: &str) -> kestrel_models::Model {
    let spec = kestrel_models::find(name).unwrap();
    let opts = BuildOptions {
        num_classes: 10,
        ..spec.default_options()
    };
    spec.build(&opts, &Device::flex())
        .map(&mut FixedWeights(name.len() as u64))
}

/// Linear congruential draws in [-0.5, 0.5).
fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
}

/// Replaces each randomly initialised parameter by fixed draws of kaiming-uniform's scale
/// (±√(3 / fan_in)); constant ones (BatchNorm's) stay.
struct FixedWeights(u64);
impl ModuleMapper for FixedWeights {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, t, mapper) = param.consume();
        let dims = t.dims();
        let values: Vec<f32> = t.to_data().try_to_vec().unwrap();
        if values.iter().all(|&v| v == values[0]) {
            return Param::from_mapped_value(id, t, mapper);
        }
        // Conv weights are [out, in/groups, kh, kw]; burn's Linear is [in, out].
        let fan_in: usize = match D {
            1 => 100,
            2 => dims[0],
            _ => dims[1..].iter().product(),
        };
        let bound = 2.0 * (3.0 / fan_in as f32).sqrt();
        let fixed: Vec<f32> = (0..values.len())
            .map(|_| lcg(&mut self.0) * bound)
            .collect();
        let t = Tensor::from_data(TensorData::new(fixed, dims), &t.device());
        Param::from_mapped_value(id, t, mapper)
    }
}

fn graph(name: &str) -> Graph {
    lower_graph(&model(name), 3).unwrap()
}

fn images(n: usize, size: usize, seed: u64) -> Vec<f32> {
    let mut s = 7 + seed;
    (0..n * 3 * size * size)
        .map(|_| 3.4 * lcg(&mut s))
        .collect()
}

fn quantized(name: &str, size: usize, method: Method) -> (Graph, Graph) {
    let m = model(name);
    let fp32 = lower_graph(&m, 3).unwrap();
    let engine = Engine::new(&fp32);
    let mut calib = Calibration::default();
    for b in 0..2 {
        let x = images(4, size, b);
        calib
            .observe_batch(&engine, &x, [4, 3, size, size])
            .unwrap();
    }
    assert_eq!(calib.images(), 8);
    let mut q = lower_graph(&m, 3).unwrap();
    let summary = quant::quantize_graph(&mut q, &calib, method).unwrap();
    let ungrouped = fp32
        .ops
        .iter()
        .filter(|op| matches!(op, Op::Conv { conv, .. } if conv.geom.groups == 1))
        .count();
    assert_eq!(summary.int8_convs, ungrouped, "{name}");
    assert!(summary.int8_convs > 0);
    (fp32, q)
}

fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn int8_engine_tracks_fp32_on_resnet_and_mobilenet() {
    for (name, size, method, tol) in [
        ("resnet20_cifar", 32, Method::MinMax, 0.08),
        ("mobilenetv2_050", 32, Method::Percentile, 0.2),
        ("resnet20_cifar", 32, Method::Entropy, 0.08),
    ] {
        let (fp32, q) = quantized(name, size, method);
        let (e32, e8) = (Engine::new(&fp32), Engine::new(&q));
        assert_eq!(
            e8.int8_convs().0,
            q.ops
                .iter()
                .filter(|o| matches!(o, Op::Conv { conv, .. } if conv.quant.as_ref().is_some_and(|q| q.input.is_some())))
                .count()
        );
        assert_eq!(e32.int8_convs().0, 0);
        let x = images(3, size, 5);
        let want = e32.run_nchw(&x, 3, 3, size, size).unwrap();
        let got = e8.run_nchw(&x, 3, 3, size, size).unwrap();
        let err = max_rel_err(&got, &want);
        // Really int8: the outputs differ from fp32, but not by much.
        assert!(
            err > 0.0 && err <= tol,
            "{name} {method:?}: int8 vs fp32 max error {err} of max|logit|"
        );
    }
}

/// The int8 expand → fp32 depthwise → int8 projection blocks run fused band by band, and give
/// the unfused engine's outputs bit for bit (same kernels, same rows, same order).
#[test]
fn fused_int8_inverted_residuals_equal_the_unfused_engine() {
    // At 128 px the second block's expanded map (48 channels at 64×64, 786 KiB) is large
    // enough for the fusion to pay.
    let size = 128;
    let (_, q) = quantized("mobilenetv2_050", size, Method::MinMax);
    let fused = Engine::new(&q);
    let unfused = Engine::new(&q).without_fusion();
    let x = images(2, size, 9);
    let profile = fused.profile_nchw(&x, 2, 3, size, size).unwrap();
    assert!(
        profile
            .by_kind
            .iter()
            .any(|(kind, ..)| kind.contains("(fused)")),
        "no fused block ran: {:?}",
        profile.by_kind
    );
    let a = fused.run_nchw(&x, 2, 3, size, size).unwrap();
    let b = unfused.run_nchw(&x, 2, 3, size, size).unwrap();
    assert!(a.iter().any(|v| *v != 0.0));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(
            x.to_bits(),
            y.to_bits(),
            "logit {i}: fused {x} vs unfused {y}"
        );
    }
}

#[test]
fn int8_file_is_4x_smaller_and_round_trips() {
    let (fp32, q) = quantized("resnet20_cifar", 32, Method::MinMax);
    let dir = std::env::temp_dir().join(format!("kestrel-int8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.int8.safetensors");
    let size = quant::save(
        &q,
        "resnet20_cifar",
        &[("method".into(), "minmax".into())],
        &path,
    )
    .unwrap();
    let fp32_bytes: usize = fp32
        .ops
        .iter()
        .map(|op| match op {
            Op::Conv { conv, .. } => 4 * (conv.weight.len() + conv.bias.len()),
            _ => 0,
        })
        .sum();
    let ratio = fp32_bytes as f64 / size as f64;
    assert!(
        ratio >= 3.5,
        "fp32 {fp32_bytes} B / int8 {size} B = {ratio}"
    );
    let meta = quant::read_metadata(&path).unwrap();
    assert_eq!(meta["method"], "minmax");

    // Loading into a freshly lowered (differently initialised) graph restores the int8 model.
    let loaded = quant::load(graph("resnet20_cifar"), "resnet20_cifar", &path).unwrap();
    let x = images(2, 32, 9);
    let a = Engine::new(&q).run_nchw(&x, 2, 3, 32, 32).unwrap();
    let b = Engine::new(&loaded).run_nchw(&x, 2, 3, 32, 32).unwrap();
    assert_eq!(a, b);

    // A file of another model names both.
    let err = quant::load(graph("resnet20_cifar"), "resnet32_cifar", &path)
        .err()
        .unwrap();
    assert!(
        err.contains("resnet20_cifar") && err.contains("resnet32_cifar"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kept_convs_run_fp32_on_their_stored_int8_weights() {
    let m = model("resnet20_cifar");
    let fp32 = lower_graph(&m, 3).unwrap();
    let mut calib = Calibration::default();
    let x = images(2, 32, 3);
    calib
        .observe_batch(&Engine::new(&fp32), &x, [2, 3, 32, 32])
        .unwrap();
    let convs: Vec<usize> = (0..fp32.ops.len())
        .filter(|&i| matches!(fp32.ops[i], Op::Conv { .. }))
        .collect();

    // Every conv kept: the engine is the fp32 one on weights rounded per output channel to
    // ±127 (rounded here by hand, not by quant's helpers).
    let mut all = fp32.clone();
    let keep_all = QuantOptions {
        keep_fp32: convs.clone(),
        ..Default::default()
    };
    let summary = quant::quantize_graph_keeping(&mut all, &calib, &keep_all).unwrap();
    assert_eq!(summary.int8_convs, 0);
    assert_eq!(summary.fp32_convs, convs);
    let mut rounded = fp32.clone();
    for op in rounded.ops.iter_mut() {
        if let Op::Conv { conv, .. } = op {
            let per = conv.weight.len() / conv.geom.out_ch;
            for row in conv.weight.chunks_mut(per) {
                let s = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                row.iter_mut().for_each(|v| *v = (*v / s).round() * s);
            }
        }
    }
    let a = Engine::new(&all).run_nchw(&x, 2, 3, 32, 32).unwrap();
    let b = Engine::new(&rounded).run_nchw(&x, 2, 3, 32, 32).unwrap();
    assert!(max_rel_err(&a, &b) < 1e-5, "{}", max_rel_err(&a, &b));

    // One conv kept: it alone runs fp32, and the file records it so (no input_quant).
    let mut one = fp32.clone();
    let kept = convs[3];
    let keep_one = QuantOptions {
        keep_fp32: vec![kept],
        ..Default::default()
    };
    let summary = quant::quantize_graph_keeping(&mut one, &calib, &keep_one).unwrap();
    assert_eq!(
        (summary.int8_convs, summary.fp32_convs.clone()),
        (convs.len() - 1, vec![kept])
    );
    assert_eq!(
        Engine::new(&one).int8_convs(),
        (convs.len() - 1, convs.len())
    );
    let dir = std::env::temp_dir().join(format!("kestrel-int8-keep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.int8.safetensors");
    quant::save(&one, "resnet20_cifar", &[], &path).unwrap();
    let loaded = quant::load(graph("resnet20_cifar"), "resnet20_cifar", &path).unwrap();
    assert_eq!(
        Engine::new(&loaded).run_nchw(&x, 2, 3, 32, 32).unwrap(),
        Engine::new(&one).run_nchw(&x, 2, 3, 32, 32).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // The sweep ranks every conv, most sensitive first, each by its own int8 error.
    let ranked =
        quant::sensitivity(&fp32, &calib, &QuantOptions::default(), &x, [2, 3, 32, 32]).unwrap();
    assert_eq!(ranked.len(), convs.len());
    assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1));
    assert!(
        ranked.iter().all(|&(_, e)| e > 0.0 && e < 0.5),
        "{ranked:?}"
    );
    // Each figure is the fp32 graph's with that one conv in int8 and every other conv on its
    // fp32 weights: the median over the images of max|Δlogit| / max|fp32 logit|.
    let mut q = fp32.clone();
    quant::quantize_graph(&mut q, &calib, Method::MinMax).unwrap();
    let reference = Engine::new(&fp32).run_nchw(&x, 2, 3, 32, 32).unwrap();
    for &(op, e) in &ranked {
        let mut one = fp32.clone();
        one.ops[op] = q.ops[op].clone();
        assert_eq!(Engine::new(&one).int8_convs().0, 1);
        let got = Engine::new(&one).run_nchw(&x, 2, 3, 32, 32).unwrap();
        let mut errs: Vec<f32> = got
            .chunks(reference.len() / 2)
            .zip(reference.chunks(reference.len() / 2))
            .map(|(a, b)| max_rel_err(a, b))
            .collect();
        errs.sort_by(f32::total_cmp);
        assert_eq!(errs[1], e, "op {op}");
    }
}

#[test]
fn kept_depthwise_convs_keep_their_fp32_weights_and_are_ranked_by_their_rounding() {
    let fp32 = graph("mobilenetv2_050");
    let mut calib = Calibration::default();
    let x = images(2, 32, 5);
    calib
        .observe_batch(&Engine::new(&fp32), &x, [2, 3, 32, 32])
        .unwrap();
    let grouped: Vec<usize> = (0..fp32.ops.len())
        .filter(|&i| matches!(&fp32.ops[i], Op::Conv { conv, .. } if conv.geom.groups > 1))
        .collect();
    assert!(grouped.len() > 5, "{grouped:?}");
    let convs = fp32
        .ops
        .iter()
        .filter(|op| matches!(op, Op::Conv { .. }))
        .count();

    // The sweep ranks the depthwise convs beside the dense ones; a depthwise conv's figure is
    // the fp32 graph's with only that conv's weights rounded per output channel to ±127
    // (by hand here).
    let opts = QuantOptions {
        min_depth: 0,
        ..Default::default()
    };
    let ranked = quant::sensitivity(&fp32, &calib, &opts, &x, [2, 3, 32, 32]).unwrap();
    assert_eq!(ranked.len(), convs);
    let reference = Engine::new(&fp32).run_nchw(&x, 2, 3, 32, 32).unwrap();
    for &op in &grouped {
        let e = ranked.iter().find(|r| r.0 == op).unwrap().1;
        let mut one = fp32.clone();
        let Op::Conv { conv, .. } = &mut one.ops[op] else {
            unreachable!()
        };
        let per = conv.weight.len() / conv.geom.out_ch;
        for row in conv.weight.chunks_mut(per) {
            let s = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            row.iter_mut().for_each(|v| *v = (*v / s).round() * s);
        }
        let got = Engine::new(&one).run_nchw(&x, 2, 3, 32, 32).unwrap();
        let mut errs: Vec<f32> = got
            .chunks(reference.len() / 2)
            .zip(reference.chunks(reference.len() / 2))
            .map(|(a, b)| max_rel_err(a, b))
            .collect();
        errs.sort_by(f32::total_cmp);
        assert!(
            (errs[1] - e).abs() <= 1e-6 * errs[1].max(1e-3),
            "op {op}: {} vs {e}",
            errs[1]
        );
        assert!(e > 0.0, "op {op}");
    }
    // --depthwise-fp32 leaves nothing of theirs to rank.
    let dw = QuantOptions {
        depthwise_fp32: true,
        ..opts.clone()
    };
    let ranked = quant::sensitivity(&fp32, &calib, &dw, &x, [2, 3, 32, 32]).unwrap();
    assert_eq!(ranked.len(), convs - grouped.len());
    assert!(ranked.iter().all(|r| !grouped.contains(&r.0)));

    // A kept depthwise conv keeps its exact fp32 weights and no int8 copy; the others are
    // rounded; the int8 conv count is unchanged.
    let kept = grouped[2];
    let mut q = fp32.clone();
    let keep = QuantOptions {
        keep_fp32: vec![kept],
        ..opts.clone()
    };
    let summary = quant::quantize_graph_keeping(&mut q, &calib, &keep).unwrap();
    assert_eq!(summary.int8_convs, convs - grouped.len());
    assert!(summary.fp32_convs.is_empty(), "{:?}", summary.fp32_convs);
    for &op in &grouped {
        let (Op::Conv { conv: a, .. }, Op::Conv { conv: b, .. }) = (&q.ops[op], &fp32.ops[op])
        else {
            unreachable!()
        };
        if op == kept {
            assert!(a.quant.is_none());
            assert_eq!(a.weight, b.weight);
        } else {
            assert!(a.quant.is_some(), "op {op}");
            assert_ne!(a.weight, b.weight, "op {op}");
        }
    }
}

/// Rewrites every `*.input_quant` of the int8 file at `src` with `f` into `dst`.
fn rewrite_input_quants(
    src: &std::path::Path,
    dst: &std::path::Path,
    f: impl Fn(&[f32]) -> Vec<f32>,
) {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes = std::fs::read(src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            if name.ends_with(".input_quant") {
                let v: Vec<f32> = t
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect();
                let w = f(&v);
                let b = w.iter().flat_map(|x| x.to_le_bytes()).collect();
                (name, Dtype::F32, vec![w.len()], b)
            } else {
                (name, t.dtype(), t.shape().to_vec(), t.data().to_vec())
            }
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let out = safetensors::tensor::serialize(views, meta.metadata().clone()).unwrap();
    std::fs::write(dst, out).unwrap();
}

#[test]
fn activation_bits_are_saved_and_older_7bit_files_still_load() {
    let m = model("resnet8_cifar");
    let fp32 = lower_graph(&m, 3).unwrap();
    let mut calib = Calibration::default();
    calib
        .observe_batch(&Engine::new(&fp32), &images(4, 32, 1), [4, 3, 32, 32])
        .unwrap();
    let quantize = |bits: u8| {
        let mut g = lower_graph(&m, 3).unwrap();
        let opts = QuantOptions {
            act_bits: bits,
            ..QuantOptions::default()
        };
        quant::quantize_graph_keeping(&mut g, &calib, &opts).unwrap();
        g
    };
    let maxes = |g: &Graph| -> Vec<u8> {
        g.ops
            .iter()
            .filter_map(|op| match op {
                Op::Conv { conv, .. } => Some(conv.quant.as_ref()?.input?.max),
                _ => None,
            })
            .collect()
    };
    let (q8, q7) = (quantize(8), quantize(7));
    assert!(!maxes(&q8).is_empty());
    assert!(maxes(&q8).iter().all(|&m| m == 255) && maxes(&q7).iter().all(|&m| m == 127));
    let dir = std::env::temp_dir().join(format!("kestrel-int8-bits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = images(2, 32, 5);
    let run = |g: &Graph| Engine::new(g).run_nchw(&x, 2, 3, 32, 32).unwrap();
    for (g, name) in [(&q8, "8.safetensors"), (&q7, "7.safetensors")] {
        let path = dir.join(name);
        quant::save(g, "resnet8_cifar", &[], &path).unwrap();
        let loaded = quant::load(graph("resnet8_cifar"), "resnet8_cifar", &path).unwrap();
        assert_eq!(maxes(&loaded), maxes(g), "{name}");
        assert_eq!(run(&loaded), run(g), "{name}");
    }
    // The two ranges give different models (8-bit steps are about half as large).
    assert_ne!(run(&q8), run(&q7));
    // A file from before 8-bit activations: (scale, zero point) pairs, read as 7-bit.
    let old = dir.join("old.safetensors");
    rewrite_input_quants(&dir.join("7.safetensors"), &old, |v| v[..2].to_vec());
    let loaded = quant::load(graph("resnet8_cifar"), "resnet8_cifar", &old).unwrap();
    assert_eq!(run(&loaded), run(&q7));
    // A maximum other than 127 or 255 names the tensor.
    let bad = dir.join("bad.safetensors");
    rewrite_input_quants(&dir.join("8.safetensors"), &bad, |v| {
        vec![v[0], v[1], 200.0]
    });
    let err = quant::load(graph("resnet8_cifar"), "resnet8_cifar", &bad)
        .err()
        .unwrap();
    assert!(
        err.contains("input_quant") && err.contains("bad.safetensors"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn weight_and_activation_quantization_by_hand() {
    // Channel 0: max|w| = 6.3 → scale 0.1, q = [63, −20, 0]; channel 1: all zero → scale 1.
    let (q, s) = quant::quantize_weights(&[6.3, -2.0, 0.04, 0.0, 0.0, 0.0], 2, 63);
    assert_eq!(q, vec![63, -20, 0, 0, 0, 0]);
    assert!((s[0] - 0.1).abs() < 1e-7 && s[1] == 1.0);
    // The 8-bit storage range: 12.7 / 127 = 0.1 again.
    let (q, _) = quant::quantize_weights(&[12.7, -2.0], 1, 127);
    assert_eq!(q, vec![127, -20]);
    // 7-bit activations: [−1, 1.54] → scale 2.54 / 127 = 0.02, zero point 1 / 0.02 = 50.
    let (scale, zero) = quant::activation_params(-1.0, 1.54, 127);
    assert!((scale - 0.02).abs() < 1e-7 && zero == 50, "{scale} {zero}");
    // 8-bit: [−1, 4.1] → scale 5.1 / 255 = 0.02, zero point 50 again.
    let (scale, zero) = quant::activation_params(-1.0, 4.1, 255);
    assert!((scale - 0.02).abs() < 1e-7 && zero == 50, "{scale} {zero}");
    // A ReLU output [0, 1.27]: zero point 0, scale 0.01; a range without 0 is widened to it.
    assert_eq!(quant::activation_params(0.0, 1.27, 127).1, 0);
    assert_eq!(
        quant::activation_params(1.0, 1.27, 127),
        quant::activation_params(0.0, 1.27, 127)
    );
    assert_eq!(quant::act_max(8), Ok(255));
    assert_eq!(quant::act_max(7), Ok(127));
    assert!(quant::act_max(6).is_err());
}

#[test]
fn entropy_threshold_matches_the_tensorrt_reference_on_synthetic_histograms() {
    // Histograms (ReLU-like: 60% zeros in bin 0, a half-normal bulk, far outliers; and a
    // Laplace |x|) with the bin NVIDIA pytorch-quantization's `_compute_amax_entropy` chooses,
    // from scripts/make_entropy_fixture.py. Without the reference's bin-0 handling the zeros
    // dominate and the threshold collapses.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/entropy/thresholds.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture (scripts/make_entropy_fixture.py)");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let hist: Vec<f64> = c["hist"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(hist.len(), 2048);
        let levels = c["levels"].as_u64().unwrap() as usize;
        let start = c["start_bin"].as_u64().unwrap() as usize;
        let want = c["bin"].as_u64().unwrap() as usize;
        assert!(want < 2048, "the reference clips ({})", c["name"]);
        assert_eq!(
            quant::entropy_threshold_bin(&hist, levels, start),
            want,
            "{}",
            c["name"]
        );
    }
}

#[test]
fn int8_file_round_trips_cbam_and_performer_parameters() {
    // The CBAM convs and the Performer's random features are stored with the int8 file: loaded
    // into a graph of another random init, the engine gives the saved model's logits exactly.
    use crate::onnx_export::tiny_architecture;
    use kestrel_models::Model;
    let d = Device::flex();
    let cbam = || tiny_architecture("resnet50_cbam_tiny", &d);
    let performer = || tiny_architecture("t2t_vit_official_tiny", &d);
    let dir = std::env::temp_dir().join(format!("kestrel-int8-attn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, build, size) in [
        ("cbam", &cbam as &dyn Fn() -> Model, 32),
        ("performer", &performer, 64),
    ] {
        let fp32 = lower_graph(&build(), 3).unwrap();
        let mut calib = Calibration::default();
        let x = images(2, size, 3);
        calib
            .observe_batch(&Engine::new(&fp32), &x, [2, 3, size, size])
            .unwrap();
        let mut q = fp32.clone();
        quant::quantize_graph(&mut q, &calib, Method::MinMax).unwrap();
        assert!(
            q.ops
                .iter()
                .any(|op| matches!(op, Op::Cbam { .. } | Op::PerformerAttention { .. })),
            "{name}: the graph has the op"
        );
        let path = dir.join(format!("{name}.int8.safetensors"));
        quant::save(&q, name, &[], &path).unwrap();
        let other = lower_graph(&build(), 3).unwrap();
        let before = Engine::new(&other).run_nchw(&x, 2, 3, size, size).unwrap();
        let loaded = quant::load(other, name, &path).unwrap();
        let a = Engine::new(&q).run_nchw(&x, 2, 3, size, size).unwrap();
        let b = Engine::new(&loaded).run_nchw(&x, 2, 3, size, size).unwrap();
        assert_ne!(a, before, "{name}: the two inits differ");
        assert_eq!(a, b, "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn geometry(in_ch: usize, out_ch: usize, k: usize, groups: usize) -> kestrel_kernels::ConvGeometry {
    kestrel_kernels::ConvGeometry {
        in_ch,
        out_ch,
        kernel: [k, k],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [k / 2; 4],
        groups,
        tf_same: false,
    }
}

#[test]
fn bias_correction_by_hand() {
    // 1×1 conv 2 → 2: weights [[0.5, −0.25], [1, 2]] rounded to [[0.52, −0.25], [1, 1.97]],
    // input means [2, 4]: output 0 shifts by 0.02·2 = 0.04, output 1 by −0.03·4 = −0.12, so
    // the biases [1, 1] become [0.96, 1.12].
    let mut conv = kestrel_deploy::ConvSpec::new(
        geometry(2, 2, 1, 1),
        vec![0.5, -0.25, 1.0, 2.0],
        Some(vec![1.0, 1.0]),
        kestrel_kernels::Act::Identity,
    );
    quant::correct_bias(&mut conv, &[0.52, -0.25, 1.0, 1.97], &[2.0, 4.0]).unwrap();
    assert!(
        (conv.bias[0] - 0.96).abs() < 1e-6 && (conv.bias[1] - 1.12).abs() < 1e-6,
        "{:?}",
        conv.bias
    );

    // Depthwise 3×3 over 2 channels: each output sees only its own channel. Channel 0's nine
    // weights each rounded up by 0.01 (mean 3): −0.27; channel 1's centre tap down by 0.1
    // (mean −2): −0.2.
    let w = vec![0.3f32; 18];
    let mut rounded: Vec<f32> = w.iter().map(|v| v + 0.01).collect();
    rounded[9..].copy_from_slice(&w[9..]);
    rounded[9 + 4] -= 0.1;
    let mut dw = kestrel_deploy::ConvSpec::new(
        geometry(2, 2, 3, 2),
        w,
        None,
        kestrel_kernels::Act::Identity,
    );
    quant::correct_bias(&mut dw, &rounded, &[3.0, -2.0]).unwrap();
    assert!(
        (dw.bias[0] + 0.27).abs() < 1e-5 && (dw.bias[1] + 0.2).abs() < 1e-5,
        "{:?}",
        dw.bias
    );

    // Means that do not fit the conv are an error, not a silent skip.
    assert!(quant::correct_bias(&mut dw, &rounded, &[3.0]).is_err());
}

#[test]
fn calibration_means_and_bias_correction_on_resnet() {
    // The stem conv reads the image itself: its recorded input means are the NCHW batch's
    // per-channel means, computed here directly.
    let m = model("resnet20_cifar");
    let fp32 = lower_graph(&m, 3).unwrap();
    let x = images(2, 32, 5);
    let mut calib = Calibration::default();
    calib
        .observe_batch(&Engine::new(&fp32), &x, [2, 3, 32, 32])
        .unwrap();
    let stem = (0..fp32.ops.len())
        .find(|&i| matches!(fp32.ops[i], Op::Conv { .. }))
        .unwrap();
    let got = calib.input_mean(stem).unwrap();
    for (c, g) in got.iter().enumerate() {
        let values: Vec<f32> = (0..2)
            .flat_map(|n| {
                x[(n * 3 + c) * 1024..(n * 3 + c + 1) * 1024]
                    .iter()
                    .copied()
            })
            .collect();
        let want = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        assert!(
            (*g as f64 - want).abs() < 1e-5,
            "channel {c}: {g} vs {want}"
        );
    }

    // With correction, every conv's bias moved by exactly −(W_q − W)·mean, and nothing else
    // changed: the weights and the input quantization are those of the uncorrected graph.
    let mut plain = fp32.clone();
    quant::quantize_graph_keeping(&mut plain, &calib, &QuantOptions::default()).unwrap();
    let mut corrected = fp32.clone();
    let with_correction = QuantOptions {
        bias_correction: true,
        ..Default::default()
    };
    quant::quantize_graph_keeping(&mut corrected, &calib, &with_correction).unwrap();
    let mut moved = 0;
    for (i, ((a, b), f)) in plain
        .ops
        .iter()
        .zip(&corrected.ops)
        .zip(&fp32.ops)
        .enumerate()
    {
        let (Op::Conv { conv: a, .. }, Op::Conv { conv: b, .. }, Op::Conv { conv: f, .. }) =
            (a, b, f)
        else {
            continue;
        };
        assert_eq!(a.weight, b.weight);
        assert_eq!(a.quant, b.quant);
        let mean = calib.input_mean(i).unwrap();
        let per = f.weight.len() / f.geom.out_ch;
        let taps = per / f.geom.in_ch;
        for o in 0..f.geom.out_ch {
            let shift: f64 = (0..per)
                .map(|k| {
                    (b.weight[o * per + k] - f.weight[o * per + k]) as f64 * mean[k / taps] as f64
                })
                .sum();
            let want = a.bias[o] as f64 - shift;
            assert!(
                (b.bias[o] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                "op {i} out {o}"
            );
            moved += usize::from(b.bias[o] != a.bias[o]);
        }
    }
    assert!(moved > 0);
}

#[test]
fn gptq_feeds_a_rounding_error_forward_by_hand() {
    // Three weights in one output channel; the first is the row's maximum (level 127, no
    // error) and uncorrelated with the others, so GPTQ reduces to the two-weight case: w1
    // rounds to level 10 with error δ = 0.4·s, and w2 absorbs δ·H12 / (H22 + λ), the least-
    // squares compensation (Optimal Brain Surgeon's), with λ = 0.01·mean(diag H) = 0.01.
    let s = 1.0 / 127.0;
    let w = [1.0f32, 10.4 * s as f32, 20.2 * s as f32];
    #[rustfmt::skip]
    let h = [
        1.0, 0.0, 0.0,
        0.0, 1.0, 0.8,
        0.0, 0.8, 1.0,
    ];
    let (nearest, _) = quant::quantize_weights(&w, 1, 127);
    assert_eq!(nearest, [127, 10, 20]);
    let (q, scales) = quant::gptq_weights(&w, 1, 1, &h, 127);
    // w2 + δ·0.8/1.01 = (20.2 + 0.4·0.8/1.01)·s = 20.517·s → 21.
    assert_eq!(q, [127, 10, 21]);
    assert!((scales[0] as f64 - s).abs() < 1e-9);

    // Uncorrelated inputs (diagonal H): nothing to feed forward, GPTQ is nearest rounding.
    let diag = [2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.5];
    assert_eq!(quant::gptq_weights(&w, 1, 1, &diag, 127).0, nearest);
}

#[test]
fn gptq_lowers_the_output_error_on_correlated_inputs() {
    // 64 outputs × 48 inputs, inputs x = A z with a random mixing A (correlated channels):
    // ‖(W_q − W) X‖² summed over 2,000 samples is smaller with GPTQ than with nearest
    // rounding, per group as well (two groups, as a grouped conv's).
    let (out, k, n) = (64, 48, 2000);
    let mut seed = 11u64;
    let w: Vec<f32> = (0..out * k).map(|_| lcg(&mut seed)).collect();
    let a: Vec<f32> = (0..k * k).map(|_| lcg(&mut seed)).collect();
    let x: Vec<f64> = (0..n)
        .flat_map(|_| {
            let z: Vec<f32> = (0..k).map(|_| lcg(&mut seed)).collect();
            (0..k)
                .map(|i| (0..k).map(|j| (a[i * k + j] * z[j]) as f64).sum::<f64>() + 0.3)
                .collect::<Vec<_>>()
        })
        .collect();
    // Grouped weights: group g's outputs see only inputs g·kg .. (g+1)·kg.
    let wg = |groups: usize| -> Vec<f32> {
        let kg = k / groups;
        (0..out)
            .flat_map(|o| w[o * k..o * k + kg].to_vec())
            .collect()
    };
    let error = |q: &[i8], scales: &[f32], wv: &[f32], groups: usize| -> f64 {
        let kg = k / groups;
        let per = out / groups;
        let mut e = 0.0;
        for sample in x.chunks(k) {
            for o in 0..out {
                let g = o / per;
                let d: f64 = (0..kg)
                    .map(|j| {
                        let i = o * kg + j;
                        (q[i] as f64 * scales[o] as f64 - wv[i] as f64) * sample[g * kg + j]
                    })
                    .sum();
                e += d * d;
            }
        }
        e
    };
    for groups in [1usize, 2] {
        let kg = k / groups;
        let mut h = vec![0f64; groups * kg * kg];
        for sample in x.chunks(k) {
            for g in 0..groups {
                for i in 0..kg {
                    for j in 0..kg {
                        h[(g * kg + i) * kg + j] +=
                            sample[g * kg + i] * sample[g * kg + j] / n as f64;
                    }
                }
            }
        }
        let wv = wg(groups);
        let (qn, sn) = quant::quantize_weights(&wv, out, 127);
        let (qg, sg) = quant::gptq_weights(&wv, out, groups, &h, 127);
        assert_eq!(sn, sg, "GPTQ keeps the per-channel scales");
        let (en, eg) = (error(&qn, &sn, &wv, groups), error(&qg, &sg, &wv, groups));
        assert!(eg < 0.7 * en, "groups {groups}: GPTQ {eg} vs nearest {en}");
    }
}

#[test]
fn second_moments_of_the_stem_are_its_im2col_rows() {
    // resnet20_cifar's stem, 3×3 3→16, stride 1, pad 1, on two 32×32 images: 2,048 output
    // positions, all of them sampled; E[p pᵀ] over the zero-padded patches, in OIHW order
    // (channel, ky, kx), computed here from the NCHW batch.
    let m = model("resnet20_cifar");
    let fp32 = lower_graph(&m, 3).unwrap();
    let x = images(2, 32, 9);
    let mut calib = Calibration::default().with_second_moments();
    calib
        .observe_batch(&Engine::new(&fp32), &x, [2, 3, 32, 32])
        .unwrap();
    let stem = (0..fp32.ops.len())
        .find(|&i| matches!(fp32.ops[i], Op::Conv { .. }))
        .unwrap();
    let (h, k) = calib.second_moment(stem).unwrap();
    assert_eq!((k, h.len()), (27, 27 * 27));
    let at = |b: usize, c: usize, y: isize, x_: isize| -> f64 {
        if !(0..32).contains(&y) || !(0..32).contains(&x_) {
            return 0.0;
        }
        x[((b * 3 + c) * 32 + y as usize) * 32 + x_ as usize] as f64
    };
    let mut want = vec![0f64; 27 * 27];
    for b in 0..2 {
        for oy in 0..32isize {
            for ox in 0..32isize {
                let p: Vec<f64> = (0..27)
                    .map(|i| {
                        at(
                            b,
                            i / 9,
                            oy + (i / 3 % 3) as isize - 1,
                            ox + (i % 3) as isize - 1,
                        )
                    })
                    .collect();
                for i in 0..27 {
                    for j in 0..27 {
                        want[i * 27 + j] += p[i] * p[j] / 2048.0;
                    }
                }
            }
        }
    }
    for (i, (g, w)) in h.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() < 1e-4 * (1.0 + w.abs()),
            "entry {i}: {g} vs {w}"
        );
    }
    // Without with_second_moments nothing is gathered, and GPTQ says what is missing.
    let mut plain = Calibration::default();
    plain
        .observe_batch(&Engine::new(&fp32), &x, [2, 3, 32, 32])
        .unwrap();
    assert!(plain.second_moment(stem).is_none());
    let mut g = fp32.clone();
    let gptq = QuantOptions {
        rounding: quant::Rounding::Gptq,
        ..Default::default()
    };
    let err = quant::quantize_graph_keeping(&mut g, &plain, &gptq).unwrap_err();
    assert!(err.contains("second moments"), "{err}");
}

#[test]
fn gptq_quantized_resnet_tracks_fp32_closer_than_nearest() {
    // resnet20_cifar calibrated on 8 images and checked on them, every conv kept in fp32
    // compute on its int8-rounded weights (so only the weights' rounding moves the logits):
    // GPTQ minimises each conv's output error on its calibration inputs, so the logits move
    // less than with nearest rounding (both with bias correction, as kestrel quantize runs
    // them).
    let m = model("resnet20_cifar");
    let fp32 = lower_graph(&m, 3).unwrap();
    let x = images(8, 32, 21);
    let mut calib = Calibration::default().with_second_moments();
    calib
        .observe_batch(&Engine::new(&fp32), &x, [8, 3, 32, 32])
        .unwrap();
    let reference = Engine::new(&fp32).run_nchw(&x, 8, 3, 32, 32).unwrap();
    let convs: Vec<usize> = (0..fp32.ops.len())
        .filter(|&i| matches!(fp32.ops[i], Op::Conv { .. }))
        .collect();
    let err = |rounding| {
        let mut g = fp32.clone();
        let opts = QuantOptions {
            keep_fp32: convs.clone(),
            bias_correction: true,
            rounding,
            ..Default::default()
        };
        quant::quantize_graph_keeping(&mut g, &calib, &opts).unwrap();
        let got = Engine::new(&g).run_nchw(&x, 8, 3, 32, 32).unwrap();
        got.iter()
            .zip(&reference)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
    };
    let (nearest, gptq) = (err(quant::Rounding::Nearest), err(quant::Rounding::Gptq));
    assert!(gptq < 0.9 * nearest, "GPTQ {gptq} vs nearest {nearest}");
}
