//! Pruning. Channel pruning is checked against an independent reference: the unpruned model with
//! the removed channels zeroed where they are consumed (every conv / linear input axis that
//! reads them, listed here by hand from the architectures), which must give the same logits as
//! the physically smaller model. Parameter and MAC counts are checked against hand counts, and
//! the sparse file of magnitude pruning against its dense original.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use kestrel_deploy::prune::{self, Importance, StateDict};
use kestrel_models::layers::count_macs;
use kestrel_models::weights::load_safetensors_bytes;
use kestrel_models::{BuildOptions, Model};

fn build(name: &str, num_classes: usize) -> Model {
    let spec = kestrel_models::find(name).unwrap();
    let opts = BuildOptions {
        num_classes,
        ..spec.default_options()
    };
    spec.build(&opts, &Device::flex())
}

/// Deterministic pseudo-random values in [-1, 1) (64-bit LCG).
fn lcg(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `model` with every tensor drawn afresh: BN statistics and affine terms away from their
/// defaults (so that removing a channel's BN matters), running_var positive.
fn randomized(model: Model) -> Model {
    let mut state = prune::state_dict(&model).unwrap();
    for (i, (name, (_, v))) in state.iter_mut().enumerate() {
        let r = lcg(i as u64 + 1, v.len());
        for (x, r) in v.iter_mut().zip(r) {
            *x = if name.ends_with("running_var") {
                0.5 + r.abs()
            } else if name.ends_with("running_mean") || name.ends_with(".bias") {
                0.2 * r
            } else if name.contains("bn") && name.ends_with(".weight") {
                1.0 + 0.5 * r
            } else {
                0.3 * r
            };
        }
    }
    load(model, &state)
}

fn load(mut model: Model, state: &StateDict) -> Model {
    let bytes = prune::state_dict_bytes(state, None);
    load_safetensors_bytes(&mut model, bytes, Path::new("<test>")).unwrap();
    model
}

fn logits(model: &Model, x: &Tensor<4>) -> Vec<f32> {
    use burn::module::Module;
    model
        .clone()
        .valid()
        .forward(x.clone())
        .into_data()
        .try_to_vec()
        .unwrap()
}

fn input(c: usize, hw: usize) -> Tensor<4> {
    let v = lcg(99, 2 * c * hw * hw);
    Tensor::from_data(TensorData::new(v, [2, c, hw, hw]), &Device::flex())
}

/// Zeroes the channels of `axis` of `tensor` not in `kept`.
fn zero_unkept(state: &mut StateDict, tensor: &str, axis: usize, kept: &[usize]) {
    let (shape, values) = state
        .get_mut(tensor)
        .unwrap_or_else(|| panic!("no tensor {tensor}"));
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    for o in 0..outer {
        for c in (0..n).filter(|c| !kept.contains(c)) {
            let at = (o * n + c) * inner;
            values[at..at + inner].iter_mut().for_each(|v| *v = 0.0);
        }
    }
}

/// Prunes `model` by channels and checks the smaller model against the zeroed reference.
/// `consumers` maps each group's first layer to the (tensor, axis) that read its channels.
fn check_against_zeroed(
    name: &str,
    model: Model,
    amount: f64,
    importance: Importance,
    consumers: &BTreeMap<String, Vec<(String, usize)>>,
    hw: usize,
) -> prune::ChannelPruned {
    let pruned = prune::prune_channels(&model, name, 3, amount, importance).unwrap();
    let small =
        prune::apply_channel_counts(build(name, 10), name, 3, &pruned.counts, &Device::flex())
            .unwrap();
    let small = load(small, &pruned.state);

    let mut zeroed = prune::state_dict(&model).unwrap();
    for g in &pruned.groups {
        let first = &g.layers[0];
        let readers = consumers
            .get(first)
            .unwrap_or_else(|| panic!("{name}: unexpected group led by {first}: {:?}", g.layers));
        for (t, axis) in readers {
            zero_unkept(&mut zeroed, t, *axis, &g.kept);
        }
    }
    assert_eq!(
        pruned.groups.len(),
        consumers.len(),
        "{name}: groups {:?}",
        pruned.groups.iter().map(|g| &g.layers).collect::<Vec<_>>()
    );
    let reference = load(build(name, 10), &zeroed);
    let x = input(3, hw);
    let (a, b) = (logits(&small, &x), logits(&reference, &x));
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "{name}: max diff {diff}, max |logit| {scale}"
    );
    // The zeroed channels matter: the unpruned model gives other logits.
    let full = logits(&model, &x);
    let moved = full
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        moved > 1e-2 * scale,
        "{name}: pruning changed nothing ({moved})"
    );
    pruned
}

fn readers(list: &[(&str, usize)]) -> Vec<(String, usize)> {
    list.iter().map(|(t, a)| (t.to_string(), *a)).collect()
}

#[test]
fn channel_pruned_resnet_equals_the_unpruned_one_with_those_channels_zeroed() {
    let model = randomized(build("resnet8_cifar", 10));
    // resnet8_cifar: stem 3->16, layer1.0 (16), layer2.0 (32, projection), layer3.0 (64,
    // projection), fc. The stem and layer1.0's output share the identity residual.
    let mut consumers = BTreeMap::new();
    let w = |l: &str| format!("{l}.weight");
    consumers.insert(
        "conv1".to_string(),
        readers(&[
            (&w("layer1.0.conv1"), 1),
            (&w("layer2.0.conv1"), 1),
            (&w("layer2.0.downsample.0"), 1),
        ]),
    );
    for s in 1..=3 {
        consumers.insert(
            format!("layer{s}.0.conv1"),
            readers(&[(&w(&format!("layer{s}.0.conv2")), 1)]),
        );
    }
    consumers.insert(
        "layer2.0.downsample.0".to_string(),
        readers(&[(&w("layer3.0.conv1"), 1), (&w("layer3.0.downsample.0"), 1)]),
    );
    consumers.insert(
        "layer3.0.downsample.0".to_string(),
        readers(&[("fc.weight", 1)]),
    );
    let pruned = check_against_zeroed(
        "resnet8_cifar",
        model.clone(),
        0.5,
        Importance::L1,
        &consumers,
        16,
    );
    // The residual groups hold every layer that writes the stream.
    let layers: Vec<&Vec<String>> = pruned.groups.iter().map(|g| &g.layers).collect();
    assert!(layers.contains(&&vec!["conv1".to_string(), "layer1.0.conv2".to_string()]));
    assert!(layers.contains(&&vec![
        "layer2.0.downsample.0".to_string(),
        "layer2.0.conv2".to_string()
    ]));
    // L1 importance of a group with one producer: its 8 filters of largest sum |w|.
    let state = prune::state_dict(&model).unwrap();
    let (_, v) = &state["layer1.0.conv1.weight"];
    let mut norms: Vec<(f32, usize)> = v
        .chunks(16 * 9)
        .map(|f| f.iter().map(|x| x.abs()).sum::<f32>())
        .zip(0..)
        .collect();
    norms.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut top: Vec<usize> = norms[..8].iter().map(|p| p.1).collect();
    top.sort_unstable();
    let g = pruned
        .groups
        .iter()
        .find(|g| g.layers == ["layer1.0.conv1"])
        .unwrap();
    assert_eq!(g.kept, top);

    // bn-gamma: the kept channels of that group are those of largest |γ| of its one BN.
    let bn = prune::prune_channels(&model, "resnet8_cifar", 3, 0.25, Importance::BnGamma).unwrap();
    let (_, gamma) = &state["layer1.0.bn1.weight"];
    let mut by_gamma: Vec<usize> = (0..16).collect();
    by_gamma.sort_by(|&a, &b| gamma[b].abs().total_cmp(&gamma[a].abs()));
    let mut top: Vec<usize> = by_gamma[..12].to_vec();
    top.sort_unstable();
    let g = bn
        .groups
        .iter()
        .find(|g| g.layers == ["layer1.0.conv1"])
        .unwrap();
    assert_eq!(g.kept, top);
}

#[test]
fn channel_pruned_resnet_params_and_macs_match_hand_counts() {
    let model = build("resnet8_cifar", 10);
    let pruned = prune::prune_channels(&model, "resnet8_cifar", 3, 0.5, Importance::L1).unwrap();
    let small = prune::apply_channel_counts(
        build("resnet8_cifar", 10),
        "resnet8_cifar",
        3,
        &pruned.counts,
        &Device::flex(),
    )
    .unwrap();
    let macs =
        |m: &Model| count_macs(|| m.forward(Tensor::zeros([1, 3, 32, 32], &Device::flex()))).1;
    // Widths 16/32/64 -> 8/16/32. Params (conv weights, BN γ+β, fc):
    // before: stem 3·16·9 + 32; layer1 2·16·16·9 + 64; layer2 16·32·9 + 32·32·9 + 16·32 + 3·64;
    //         layer3 32·64·9 + 64·64·9 + 32·64 + 3·128; fc 64·10 + 10 = 78,042.
    // after:  stem 3·8·9 + 16; layer1 2·8·8·9 + 32; layer2 8·16·9 + 16·16·9 + 8·16 + 3·32;
    //         layer3 16·32·9 + 32·32·9 + 16·32 + 3·64; fc 32·10 + 10 = 19,954.
    assert_eq!(model.num_trainable_params(), 78_042);
    assert_eq!(small.num_trainable_params(), 19_954);
    // MACs at 32×32 (convs and fc): before 32²·16·27 + 2·32²·16·144 + 16²·32·(144 + 288 + 16)
    // + 8²·64·(288 + 576 + 32) + 640 = 12,501,632; after, every conv but the stem has half its
    // inputs and outputs (÷4), the stem and fc half their outputs / inputs (÷2): 3,236,160.
    assert_eq!(macs(&model), 12_501_632);
    assert_eq!(macs(&small), 3_236_160);
    assert_eq!(pruned.counts["layer3.0.conv2"], 32);
    assert_eq!(pruned.counts["conv1"], 8);
}

#[test]
fn channel_pruned_mobilenetv2_equals_the_unpruned_one_with_those_channels_zeroed() {
    let model = randomized(build("mobilenetv2_050", 10));
    // timm's mobilenetv2: blocks.0.0 is depthwise-separable (its depthwise conv is in the stem's
    // group, its conv_pw reads the stem), then stages of inverted residuals of depths
    // 2, 3, 4, 3, 3, 1; every block after a stage's first adds the identity, so a stage's blocks
    // write one stream, read by each later block's conv_pw and the next stage's first.
    let depths = [1usize, 2, 3, 4, 3, 3, 1];
    let mut consumers = BTreeMap::new();
    let w = |l: String| format!("{l}.weight");
    consumers.insert(
        "conv_stem".to_string(),
        vec![(w("blocks.0.0.conv_pw".into()), 1)],
    );
    for (s, &d) in depths.iter().enumerate() {
        let out = if s == 0 { "conv_pw" } else { "conv_pwl" };
        let next = if s + 1 < depths.len() {
            w(format!("blocks.{}.0.conv_pw", s + 1))
        } else {
            w("conv_head".into())
        };
        let mut readers: Vec<(String, usize)> = (1..d)
            .map(|b| (w(format!("blocks.{s}.{b}.conv_pw")), 1))
            .collect();
        readers.push((next, 1));
        consumers.insert(format!("blocks.{s}.0.{out}"), readers);
        if s > 0 {
            for b in 0..d {
                consumers.insert(
                    format!("blocks.{s}.{b}.conv_pw"),
                    vec![(w(format!("blocks.{s}.{b}.conv_pwl")), 1)],
                );
            }
        }
    }
    consumers.insert(
        "conv_head".to_string(),
        vec![("classifier.weight".to_string(), 1)],
    );
    check_against_zeroed(
        "mobilenetv2_050",
        model,
        0.3,
        Importance::L2,
        &consumers,
        32,
    );
}

#[test]
fn magnitude_pruning_zeroes_the_smallest_weights_and_the_sparse_file_round_trips() {
    let model = randomized(build("resnet8_cifar", 10));
    let state = prune::state_dict(&model).unwrap();
    let pruned = prune::prune_l1(&model, 0.7).unwrap();
    for (name, (shape, v)) in &pruned.state {
        let (_, orig) = &state[name];
        if shape.len() < 2 {
            assert_eq!(v, orig, "{name}: not a conv/linear weight, left alone");
            continue;
        }
        // 70% of the entries (rounded) are zero, and every zero was no larger than every kept one.
        let zeros = v.iter().filter(|x| **x == 0.0).count();
        assert_eq!(zeros, (orig.len() as f64 * 0.7).round() as usize, "{name}");
        let max_dropped = orig
            .iter()
            .zip(v)
            .filter(|(_, p)| **p == 0.0)
            .fold(0f32, |m, (o, _)| m.max(o.abs()));
        let min_kept = v
            .iter()
            .filter(|x| **x != 0.0)
            .fold(f32::MAX, |m, x| m.min(x.abs()));
        assert!(max_dropped <= min_kept, "{name}");
        assert!(orig.iter().zip(v).all(|(o, p)| *p == 0.0 || p == o));
    }
    let sparse = prune::sparse_bytes(&pruned.state, "resnet8_cifar");
    let dense = prune::state_dict_bytes(&pruned.state, None);
    // 30% of the weights at 4 bytes plus 1 bit per weight is 33% of their dense size; with the
    // BN and bias tensors stored dense and the header, under 37% of the dense file.
    assert!(
        (sparse.len() as f64) < 0.37 * dense.len() as f64,
        "sparse {} vs dense {}",
        sparse.len(),
        dense.len()
    );
    let back = prune::dense_bytes(&sparse, "resnet8_cifar").unwrap();
    let mut back_model = build("resnet8_cifar", 10);
    load_safetensors_bytes(&mut back_model, back, Path::new("<test>")).unwrap();
    assert_eq!(prune::state_dict(&back_model).unwrap(), pruned.state);
    let err = prune::dense_bytes(&sparse, "resnet20_cifar").unwrap_err();
    assert!(
        err.contains("resnet8_cifar") && err.contains("resnet20_cifar"),
        "{err}"
    );
}

#[test]
fn bad_amounts_and_unsupported_models_are_clear_errors() {
    let model = build("resnet8_cifar", 10);
    for amount in [0.0, 1.0, -0.2, 1.5, f64::NAN] {
        let e = prune::prune_channels(&model, "resnet8_cifar", 3, amount, Importance::L1)
            .err()
            .unwrap();
        assert!(
            e.contains("--amount") && e.contains("between 0 and 1"),
            "{e}"
        );
        assert!(prune::prune_l1(&model, amount).is_err());
    }
    let vgg = build("vgg11", 10);
    let e = prune::prune_channels(&vgg, "vgg11", 3, 0.3, Importance::L1)
        .err()
        .unwrap();
    assert!(e.contains("vgg11") && e.contains("--method l1"), "{e}");
    let rx = build("resnext50_32x4d", 10);
    let e = prune::prune_channels(&rx, "resnext50_32x4d", 3, 0.3, Importance::L1)
        .err()
        .unwrap();
    assert!(
        e.contains("grouped conv") && e.contains("layer1.0.conv2"),
        "{e}"
    );
    // Channel counts naming a layer the model lacks (another model's) are rejected.
    let mut counts = prune::ChannelCounts::new();
    counts.insert("blocks.0.0.conv_pw".into(), 4);
    let e = prune::apply_channel_counts(
        build("resnet8_cifar", 10),
        "resnet8_cifar",
        3,
        &counts,
        &Device::flex(),
    )
    .err()
    .unwrap();
    assert!(
        e.contains("blocks.0.0.conv_pw") && e.contains("resnet8_cifar"),
        "{e}"
    );
}
