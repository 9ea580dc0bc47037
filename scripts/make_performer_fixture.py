#!/usr/bin/env python3
"""Writes crates/kestrel-deploy/tests/fixtures/performer_attention.safetensors: the official
T2T-ViT `Token_performer`'s random-feature attention alone, for the fast engine's
`PerformerAttention` op (tests/performer.rs).

The whole-model fixture `t2t_vit_official_tiny` hardly depends on its token layers' attention
(its logits move by 5e-7 when k and q are swapped, under the 1e-4 × max|logit| bar), so the op
is checked on its own here: the official module with `kqv` and `proj` set to identities (so
`single_attn(x) = v + y`, `y` the attention), on inputs large enough that the attention is far
from uniform. Then the test's ONNX export of the op (KESTREL_ONNX_WRITE_DIR) runs in
onnxruntime against the same reference (asserted here; CI has no Python). Needs torch,
safetensors, onnx, onnxruntime and a checkout of yitu-opensource/T2T-ViT.

    python3 scripts/make_performer_fixture.py --t2t-repo PATH
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/kestrel-deploy/tests/fixtures/performer_attention.safetensors"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t2t-repo", required=True, help="checkout of the official T2T-ViT repository")
    args = ap.parse_args()
    sys.path.insert(0, args.t2t_repo)
    from models.token_performer import Token_performer

    torch.manual_seed(0)
    e, n, h, w = 8, 2, 4, 5
    layer = Token_performer(dim=3 * e, in_dim=e).eval()  # m = e / 2 = 4 random features
    with torch.no_grad():
        layer.kqv.weight.copy_(torch.eye(3 * e))
        layer.kqv.bias.zero_()
        layer.proj.weight.copy_(torch.eye(e))
        layer.proj.bias.zero_()
        kqv = torch.randn(n, h * w, 3 * e)  # tokens [n, t, 3e], official (k, q, v) order
        y = layer.single_attn(kqv) - kqv[..., 2 * e:]
        # How far from uniform the attention is: y against the plain mean of v.
        spread = (y - kqv[..., 2 * e:].mean(dim=1, keepdim=True)).abs().max().item()
    nchw = lambda t: t.transpose(1, 2).reshape(n, -1, h, w).contiguous()
    save_file(
        {"kqv": nchw(kqv), "w": layer.w.detach().contiguous(), "y": nchw(y)},
        str(OUT),
        metadata={"reference": "official T2T-ViT models/token_performer.py Token_performer.single_attn"},
    )
    print(f"{OUT}: kqv {tuple(nchw(kqv).shape)}, y max|y| {y.abs().max().item():.4g}, "
          f"max |y - mean(v)| {spread:.4g}")

    import numpy as np
    import onnx
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["cargo", "test", "--release", "--workspace", "--test", "deploy_tests", "--", "performer::"],
            cwd=ROOT, env=dict(os.environ, KESTREL_ONNX_WRITE_DIR=tmp), check=True,
        )
        path = pathlib.Path(tmp) / "performer_attention.onnx"
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (out,) = sess.run(["logits"], {"input": nchw(kqv).numpy()})
        ref = nchw(y).reshape(n, -1).numpy()
        err = float(np.abs(out - ref).max())
        bar = 1e-5 * float(np.abs(ref).max())
        assert err <= bar, f"onnxruntime vs official Token_performer: {err} > {bar}"
        print(f"onnxruntime {ort.__version__} vs official Token_performer: max abs diff {err:.3g}")


if __name__ == "__main__":
    main()
