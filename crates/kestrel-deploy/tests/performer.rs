//! The fast engine's `PerformerAttention` op alone against the official T2T-ViT
//! `Token_performer` (fixture: scripts/make_performer_fixture.py, which also runs this graph's
//! ONNX export in onnxruntime against the same reference). The whole-model fixture
//! `t2t_vit_official_tiny` barely depends on the attention, so this is the op's real check.

use std::path::{Path, PathBuf};

use kestrel_deploy::engine::GraphBuilder;
use kestrel_deploy::onnx::{export, ExportMeta};
use kestrel_deploy::Engine;

/// A tensor of the fixture, which scripts/make_performer_fixture.py writes.
fn read(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    assert!(
        path.exists(),
        "{} is missing (make it with scripts/make_performer_fixture.py)",
        path.display()
    );
    crate::onnx_export::read_tensor(path, name)
}

#[test]
fn performer_attention_matches_the_official_token_performer() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/performer_attention.safetensors");
    let (shape, kqv) = read(&path, "kqv");
    let (wshape, w) = read(&path, "w");
    let (_, reference) = read(&path, "y");
    let [n, c3, h, wd] = [shape[0], shape[1], shape[2], shape[3]];
    assert_eq!(
        wshape,
        [c3 / 6, c3 / 3],
        "random features: m = e/2 rows of e"
    );
    let (mut g, x) = GraphBuilder::new(c3);
    let y = g.performer_attention(x, w, kestrel_models::t2t::PERFORMER_EPS as f32);
    // [n, e, h, w] flattened channel-major, as the fixture and ONNX's output.
    let out = g.flatten_nchw(y);
    let graph = g.finish(out).unwrap();
    let ours = Engine::new(&graph).run_nchw(&kqv, n, c3, h, wd).unwrap();
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(&reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= 1e-5 * scale,
        "engine vs official Token_performer: max abs diff {err}, max|y| {scale}"
    );
    // The export, for the fixture script's onnxruntime check.
    let bytes = export(
        &graph,
        &ExportMeta {
            model_name: "performer_attention".into(),
            input_size: [c3, h, wd],
            metadata: vec![],
        },
    )
    .unwrap();
    if let Ok(dir) = std::env::var("KESTREL_ONNX_WRITE_DIR") {
        std::fs::write(Path::new(&dir).join("performer_attention.onnx"), bytes).unwrap();
    }
}

#[test]
fn performer_attention_names_a_projection_that_does_not_fit() {
    // 24 kqv channels (e = 8) with random features of 7 values: an error naming the op.
    let (mut g, x) = GraphBuilder::new(24);
    let y = g.performer_attention(x, vec![0.5; 7], 1e-8);
    let out = g.flatten_nchw(y);
    let engine = Engine::new(&g.finish(out).unwrap());
    let err = engine
        .run_nchw(&vec![0.0; 24 * 4], 1, 24, 2, 2)
        .expect_err("a projection of 7 values for e = 8");
    assert!(err.contains("performer attention"), "{err}");
}
