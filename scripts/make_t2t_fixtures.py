#!/usr/bin/env python3
"""T2T-ViT parity fixtures for crates/kestrel-models/tests/t2t_parity.rs.

timm has no T2T-ViT, so two references:

* `t2t_vit_vitpytorch_tiny` (always): vit-pytorch's `T2TViT` (`pip install vit-pytorch`), an
  independent implementation. Its token transformers differ from the paper's (full width, x as
  the skip, no projection, a final norm), so the configuration both can express has one soft
  split (7x7, stride 4, padding 2, as the official first split) and no token transformer: soft
  split, projection, class token, position embedding, the ViT backbone (qkv without bias,
  LayerNorm eps 1e-5), the final norm and the class token's head. 32 px, width 32, 2 blocks,
  4 heads of 8, MLP 96, 10 classes. Its state_dict is saved under the official key names.
* `t2t_vit_t_official_tiny` (with --t2t-repo PATH, a checkout of the official repository
  yitu-opensource/T2T-ViT, not pip-installable): the official `T2T_ViT(tokens_type='transformer')`
  with its three soft splits and two token transformers, 64 px, width 32, 2 blocks, 4 heads,
  MLP ratio 3, token_dim 8, qk_scale = 32^-0.5 (as the official pretrained models), 10 classes.
* `t2t_vit_official_tiny` (with --t2t-repo): the same with `tokens_type='performer'`, the
  official `Token_performer` token layers (random-feature attention, its fixed projection `w` in
  the state_dict; token_dim 8 gives int(8 * 0.5) = 4 random features).

Norm affine terms are perturbed as scripts/make_parity.py does. Each folder gets
weights.safetensors, io.safetensors (input [2,3,H,W], logits) and meta.json. Also prints
sum(p.numel()) of the official t2t_vit_14/19/24 (Performer) and t2t_vit_t_14/19/24 (transformer)
when --t2t-repo is given.

With --full (and --t2t-repo) it also writes the full-size defaults, the official t2t_vit_14
and t2t_vit_t_14 at 224 px with the pretrained qk_scale (384^-0.5) (t2t_vit_t_14 with a float64
reference; the official Performer computes in float32 whatever the model's dtype), to
the git-ignored .parity/t2t_vit_14/ and .parity/t2t_vit_t_14/, which the developer-only
full_parity test checks (scripts/check_parity_full.py).

  python3 scripts/make_t2t_fixtures.py [--t2t-repo PATH [--full]]
"""
import argparse, importlib.util, json, os, sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "crates", "kestrel-models", "tests", "fixtures")


def make_parity():
    spec = importlib.util.spec_from_file_location("make_parity", os.path.join(HERE, "make_parity.py"))
    mp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mp)
    return mp


def vit_pytorch_to_official(sd):
    """vit-pytorch T2TViT names (one soft split) -> the official T2T-ViT's."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if k == "pos_embedding":
            name = "pos_embed"
        elif k == "cls_token":
            name = k
        elif k.startswith("to_patch_embedding.4."):
            name = "tokens_to_token.project." + parts[-1]
        elif k.startswith("transformer.norm."):
            name = "norm." + parts[-1]
        elif k.startswith("mlp_head."):
            name = "head." + parts[-1]
        elif k.startswith("transformer.layers."):
            i, sub, rest = parts[2], parts[3], ".".join(parts[4:])
            table = {
                "0": {"norm": "norm1", "to_qkv": "attn.qkv", "to_out.0": "attn.proj"},
                "1": {"net.0": "norm2", "net.1": "mlp.fc1", "net.4": "mlp.fc2"},
            }[sub]
            mod, leaf = rest.rsplit(".", 1)
            name = f"blocks.{i}.{table[mod]}.{leaf}"
        else:
            raise KeyError(k)
        out[name] = v.detach().contiguous().clone()
    return out


def write(folder, model, sd, size, meta, out=OUT):
    d = os.path.join(out, folder)
    os.makedirs(d, exist_ok=True)
    x = torch.randn((2, *size), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x)
    save_file(sd, os.path.join(d, "weights.safetensors"))
    save_file({"input": x.contiguous(), "logits": y.contiguous()}, os.path.join(d, "io.safetensors"))
    meta = dict(meta, params=int(sum(p.numel() for p in model.parameters())), input=list(x.shape),
                logits_absmax=float(y.abs().max()), torch=torch.__version__)
    json.dump(meta, open(os.path.join(d, "meta.json"), "w"), indent=1)
    print(folder, meta["params"], "params, max|logit|", round(meta["logits_absmax"], 4))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t2t-repo", help="checkout of the official T2T-ViT repository")
    ap.add_argument("--full", action="store_true", help="also the full-size t2t_vit_14 in .parity/")
    args = ap.parse_args()
    mp = make_parity()

    import vit_pytorch
    from vit_pytorch.t2t import T2TViT
    torch.manual_seed(0)
    m = T2TViT(image_size=32, num_classes=10, dim=32, depth=2, heads=4, mlp_dim=96, dim_head=8,
               t2t_layers=((7, 4),)).eval()
    mp.perturb(m, 0, (3, 32, 32))
    write("t2t_vit_vitpytorch_tiny", m, vit_pytorch_to_official(m.state_dict()), (3, 32, 32),
          dict(reference=f"vit-pytorch {vit_pytorch.__version__ if hasattr(vit_pytorch, '__version__') else ''} T2TViT",
               kwargs=dict(image_size=32, num_classes=10, dim=32, depth=2, heads=4, mlp_dim=96, dim_head=8,
                           t2t_layers=[[7, 4]])))

    if not args.t2t_repo:
        return
    sys.path.insert(0, args.t2t_repo)
    from models.t2t_vit import T2T_ViT
    torch.manual_seed(0)
    kw = dict(img_size=64, tokens_type="transformer", embed_dim=32, depth=2, num_heads=4, mlp_ratio=3.,
              token_dim=8, qk_scale=32 ** -0.5, num_classes=10)
    m = T2T_ViT(**kw).eval()
    mp.perturb(m, 0, (3, 64, 64))
    sd = {k: v.detach().contiguous().clone() for k, v in m.state_dict().items()}
    write("t2t_vit_t_official_tiny", m, sd, (3, 64, 64), dict(reference="official T2T-ViT T2T_ViT", kwargs=kw))
    torch.manual_seed(0)
    kw = dict(kw, tokens_type="performer")
    m = T2T_ViT(**kw).eval()
    mp.perturb(m, 0, (3, 64, 64))
    sd = {k: v.detach().contiguous().clone() for k, v in m.state_dict().items()}
    write("t2t_vit_official_tiny", m, sd, (3, 64, 64), dict(reference="official T2T-ViT T2T_ViT", kwargs=kw))
    sizes = {14: (384, 14, 6), 19: (448, 19, 7), 24: (512, 24, 8)}
    for tokens_type, prefix in (("performer", "t2t_vit_"), ("transformer", "t2t_vit_t_")):
        for n, (d, depth, h) in sizes.items():
            full = T2T_ViT(tokens_type=tokens_type, embed_dim=d, depth=depth, num_heads=h, mlp_ratio=3.)
            print(f"{prefix}{n}", "sum(p.numel())", sum(p.numel() for p in full.parameters()))
    if args.full:
        parity = os.path.join(os.path.dirname(HERE), ".parity")
        from safetensors.torch import load_file
        for tokens_type, name in (("performer", "t2t_vit_14"), ("transformer", "t2t_vit_t_14")):
            torch.manual_seed(0)
            kw = dict(tokens_type=tokens_type, embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.,
                      qk_scale=384 ** -0.5)
            m = T2T_ViT(**kw).eval()
            mp.perturb(m, 0, (3, 224, 224))
            sd = {k: v.detach().contiguous().clone() for k, v in m.state_dict().items()}
            write(name, m, sd, (3, 224, 224), dict(reference="official T2T-ViT", kwargs=kw), out=parity)
            if tokens_type == "performer":
                continue  # its prm_exp casts to float32 (x.float()): no float64 evaluation
            x = load_file(os.path.join(parity, name, "io.safetensors"))["input"]
            with torch.no_grad():
                y64 = m.double()(x.double())
            save_file({"logits": y64.float().contiguous()},
                      os.path.join(parity, name, "reference_fp64.safetensors"))


if __name__ == "__main__":
    main()
