#!/usr/bin/env python3
"""A PyTorch emulation of kestrel's int8 scheme (kestrel-deploy's quant.rs) on a timm model, and a
per-layer sensitivity sweep: which convs' quantization moves the top-1 away from fp32.

The emulation: every ungrouped conv and linear reads its input fake-quantized per tensor,
asymmetric, in --act-bits bits (kestrel: 7, range from the calibration min/max, widened to hold
0, zero point rounded), with symmetric per-output-channel int8 weights (±127); depthwise convs
keep fp32 compute on int8-rounded weights. BN is folded by timm's eval mode being exact in
fp32, so weights are quantized after folding (as kestrel does).

With --bias-correction, every conv's bias absorbs the mean shift of its rounded weights,
-(W_q - W) . E[x] with E[x] the fp32 input's per-channel mean over the calibration images
(kestrel quantize's default).

With --gptq, the weights are rounded by GPTQ against each layer's input second moments (kestrel
quantize's default --rounding gptq); --act-bits 0 leaves the activations in fp32, to separate
the weights' share of the error; --empirical-bias tries Nagel et al.'s empirical bias correction
(each conv in order absorbs its int8 output's mean shift from fp32) after quantizing.

Usage: python3 scripts/int8_sensitivity.py --weights lite0.safetensors --calib CALIB_DIR \
           --images EVAL_DIR [--limit 500] [--act-bits 7] [--bias-correction] [--gptq]
           [--empirical-bias] [--sweep] [--noise-floor]

Prints the whole-model agreement, then with --sweep, for every quantized layer: the agreement
with only that layer quantized, and with all layers but that one quantized. --noise-floor first
prints how often the fp32 top-1 survives perturbations smaller than int8's: the whole model in
bfloat16, and every weight times (1 + 0.001 or 0.003 * N(0, 1)).
"""
import argparse, json

import torch
import timm

from ort_int8_agreement import batch, list_images


def fold_bn(m):
    """conv+BN pairs of timm's EfficientNet/MobileNet blocks folded into the conv (what kestrel's
    fold.rs does before quantizing)."""
    import torch.nn as nn
    from timm.layers import BatchNormAct2d
    pairs = []
    mods = dict(m.named_modules())
    names = list(mods)
    for i, n in enumerate(names):
        if isinstance(mods[n], nn.Conv2d):
            for nb in names[i + 1:i + 3]:
                if isinstance(mods[nb], (nn.BatchNorm2d, BatchNormAct2d)):
                    pairs.append((mods[n], mods[nb]))
                    break
    for conv, bn in pairs:
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.data = conv.weight.data * s.view(-1, 1, 1, 1)
        b = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.bias = torch.nn.Parameter((b - bn.running_mean) * s + bn.bias)
        bn.running_mean.zero_(); bn.running_var.fill_(1 - bn.eps); bn.weight.data.fill_(1); bn.bias.data.zero_()


def weight_fq(w):
    s = w.abs().flatten(1).max(1).values.clamp(min=1e-12) / 127
    sh = [-1] + [1] * (w.dim() - 1)
    return (w / s.view(sh)).round().clamp(-127, 127) * s.view(sh)


def gptq_fq(w, h, damp):
    """GPTQ (Frantar et al. 2022) with kestrel's grid: per-output-channel scales max|w|/127, the
    columns rounded in order, each one's error spread over the later columns through the
    inverse of h = E[x x^T] (Cholesky form). h is [K, K], or [G, k, k] per group (depthwise)."""
    s = w.abs().flatten(1).max(1).values.clamp(min=1e-12).double() / 127
    H = (h if h.dim() == 3 else h.unsqueeze(0)).double().clone()
    G, k = H.shape[0], H.shape[-1]
    W = w.flatten(1).double().view(G, -1, k).clone()
    s = s.view(G, -1)
    diag = H.diagonal(dim1=1, dim2=2)
    dead = diag == 0
    diag[dead] = 1
    diag += damp * diag.mean(1, keepdim=True)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.empty_like(W)
    for j in range(k):
        col = W[:, :, j]
        q = (col / s).round().clamp(-127, 127) * s
        Q[:, :, j] = q
        err = (col - q) / Hinv[:, j, j].unsqueeze(1)
        W[:, :, j:] -= err.unsqueeze(2) * Hinv[:, j, j:].unsqueeze(1)
    return Q.view(w.shape).to(w.dtype)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--weights")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--calib-images", type=int, default=256)
    ap.add_argument("--images", required=True)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--act-bits", type=int, default=7, help="0: activations stay fp32")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--bias-correction", action="store_true")
    ap.add_argument("--noise-floor", action="store_true")
    ap.add_argument("--gptq", action="store_true",
                    help="round the weights with GPTQ (error feedback through each layer's input "
                         "second moment) instead of to nearest")
    ap.add_argument("--gptq-damp", type=float, default=0.01)
    ap.add_argument("--empirical-bias", action="store_true",
                    help="after quantizing, correct each conv's bias in order by the mean of its "
                         "int8 output's shift from fp32 on the calibration images")
    ap.add_argument("--empirical-images", type=int, default=64)
    ap.add_argument("--sweep-images", type=int, default=100,
                    help="the first N images, for the sweep (the logits' error needs few)")
    a = ap.parse_args()
    torch.set_grad_enabled(False)

    m = timm.create_model(a.model)
    if a.weights:
        from safetensors.torch import load_file
        m.load_state_dict(load_file(a.weights), strict=False)
    m.eval()
    tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=m))
    calib = torch.from_numpy(batch(list_images(a.calib, a.calib_images), tf))
    x = torch.from_numpy(batch(list_images(a.images, a.limit), tf))
    torch.set_num_threads(2)
    def forward(x):
        return torch.cat([m(x[i:i + 50]) for i in range(0, len(x), 50)])

    ref = forward(x)
    if a.noise_floor:
        import copy
        top1 = lambda out: (out.argmax(1) == ref.argmax(1)).float().mean().item()
        mb = copy.deepcopy(m).to(torch.bfloat16)
        bf16 = torch.cat([mb(x[i:i + 50].bfloat16()).float() for i in range(0, len(x), 50)])
        print(json.dumps({"bfloat16": top1(bf16)}), flush=True)
        del mb
        state = copy.deepcopy(m.state_dict())
        for rel in (1e-3, 3e-3):
            g = torch.Generator().manual_seed(0)
            for p in m.parameters():
                p.data += torch.randn(p.shape, generator=g) * rel * p.data.abs()
            print(json.dumps({"weight_noise": rel, "agreement": top1(forward(x))}), flush=True)
            m.load_state_dict(state)
    fold_bn(m)
    assert (m(x[:8]) - ref[:8]).abs().max() < 1e-3 * ref.abs().max(), "BN folding changed the logits"

    convs = [(n, mod) for n, mod in m.named_modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    layers = [(n, mod) for n, mod in convs if isinstance(mod, torch.nn.Linear) or mod.groups == 1]
    dw = [(n, mod) for n, mod in convs if isinstance(mod, torch.nn.Conv2d) and mod.groups > 1]
    ranges, sums = {}, {}
    hooks = [mod.register_forward_pre_hook(
        lambda mod, inp, n=n: ranges.__setitem__(n, (min(ranges.get(n, (0, 0))[0], inp[0].min().item()),
                                                     max(ranges.get(n, (0, 0))[1], inp[0].max().item()))))
        for n, mod in layers]
    hooks += [mod.register_forward_pre_hook(
        lambda mod, inp, n=n: sums.__setitem__(n, sums.get(n, 0) + (
            inp[0].sum((0, 2, 3)) / inp[0][0, 0].numel() if inp[0].dim() == 4 else inp[0].sum(0))))
        for n, mod in convs]
    hessians = {}

    def second_moment(mod, inp, n):
        """E[x x^T] of the layer's im2col rows (per channel group for depthwise convs)."""
        x = inp[0]
        if isinstance(mod, torch.nn.Linear):
            cols = x.reshape(-1, x.shape[-1])
            h = cols.T @ cols
            cnt = cols.shape[0]
        else:
            u = torch.nn.functional.unfold(x, mod.kernel_size, mod.dilation, mod.padding, mod.stride)
            g = mod.groups
            k = u.shape[1] // g
            u = u.view(x.shape[0], g, k, -1).permute(1, 0, 3, 2).reshape(g, -1, k)
            h = u.transpose(1, 2) @ u
            cnt = u.shape[1]
        old = hessians.get(n, (0, 0))
        hessians[n] = (old[0] + h, old[1] + cnt)

    if a.gptq:
        hooks += [mod.register_forward_pre_hook(lambda mod, inp, n=n: second_moment(mod, inp, n))
                  for n, mod in convs]
    for i in range(0, len(calib), 32):
        m(calib[i:i + 32])
    for h in hooks:
        h.remove()
    for _, mod in convs:
        if mod.bias is None:
            mod.bias = torch.nn.Parameter(torch.zeros(mod.weight.shape[0]))
    fp_b = {n: mod.bias.data.clone() for n, mod in convs}
    levels = 2 ** a.act_bits - 1
    fp_w = {n: mod.weight.data.clone() for n, mod in convs}
    active = set()

    def act_fq(n):
        lo, hi = ranges[n]
        s = max((hi - lo) / max(levels, 1), 1e-8)
        z = min(max(round(-lo / s), 0), levels)
        def hook(mod, inp):
            if n not in active or not a.act_bits:
                return None
            return ((inp[0] / s + z).round().clamp(0, levels) - z) * s,
        return hook

    for n, mod in layers:
        mod.register_forward_pre_hook(act_fq(n))

    def correct(n, mod, w):
        """The bias of conv/linear `mod` (fp32 weights `w`, now rounded) less (W_q - W) . E[x]."""
        mod.bias.data = fp_b[n].clone()
        if not a.bias_correction:
            return
        mu = sums[n] / len(calib)
        dW = mod.weight.data - w
        if isinstance(mod, torch.nn.Linear):
            mod.bias.data -= dW @ mu
        else:
            g, cin = mod.groups, dW.shape[1]
            out = dW.shape[0]
            mod.bias.data -= (dW.sum((2, 3)).view(g, out // g, cin) * mu.view(g, 1, cin)).sum(2).view(out)

    rounded = {}
    for n, _ in convs:
        if a.gptq:
            h, cnt = hessians[n]
            rounded[n] = gptq_fq(fp_w[n], h / cnt, a.gptq_damp)
        else:
            rounded[n] = weight_fq(fp_w[n])

    def configure(quantized, dw_q=True):
        active.clear(); active.update(quantized)
        for n, mod in layers:
            mod.weight.data = rounded[n] if n in quantized else fp_w[n]
            correct(n, mod, fp_w[n])
        for n, mod in dw:
            mod.weight.data = rounded[n] if dw_q else fp_w[n]
            correct(n, mod, fp_w[n])

    def agree(quantized, dw_q=True, n=None):
        configure(quantized, dw_q)
        out = forward(x[:n])
        ref_n = ref[:n]
        err = ((out - ref_n).abs().amax(1) / ref_n.abs().amax(1)).median().item()
        return (out.argmax(1) == ref_n.argmax(1)).float().mean().item(), err

    names = [n for n, _ in layers]
    if a.empirical_bias:
        # Each conv in execution order: its bias absorbs the mean of (int8 model's output -
        # fp32 model's output) over the calibration images, with every conv quantized and the
        # earlier ones already corrected (Nagel et al. 2019's empirical bias correction).
        configure(set(names))
        sub = calib[: a.empirical_images]
        means = {}
        def mean_hook(n):
            def hook(mod, inp, out):
                means[n] = out.mean((0, 2, 3)) if out.dim() == 4 else out.mean(0)
            return hook
        hs = [mod.register_forward_hook(mean_hook(n)) for n, mod in convs]
        saved_active = set(active); active.clear()
        saved_w = {n: mod.weight.data for n, mod in convs}
        saved_b = {n: mod.bias.data for n, mod in convs}
        for n, mod in convs:
            mod.weight.data = fp_w[n]; mod.bias.data = fp_b[n]
        acc = {}
        for i in range(0, len(sub), 32):
            m(sub[i:i + 32])
            for n in means:
                acc[n] = acc.get(n, 0) + means[n] * len(sub[i:i + 32])
        fp_mean = {n: v / len(sub) for n, v in acc.items()}
        for n, mod in convs:
            mod.weight.data = saved_w[n]; mod.bias.data = saved_b[n]
        active.update(saved_active)
        order = [n for n, _ in convs]
        mods = dict(convs)
        for n in order:
            acc = 0
            for i in range(0, len(sub), 32):
                m(sub[i:i + 32])
                acc = acc + means[n] * len(sub[i:i + 32])
            mods[n].bias.data = mods[n].bias.data - (acc / len(sub) - fp_mean[n])
        for h in hs:
            h.remove()
        out = forward(x)
        print(json.dumps({"empirical_bias": (out.argmax(1) == ref.argmax(1)).float().mean().item(),
                          "median_rel_logit_err": ((out - ref).abs().amax(1) / ref.abs().amax(1)).median().item()}), flush=True)
        return
    all_q, e = agree(set(names))
    print(json.dumps({"all": all_q, "median_rel_logit_err": e, "act_bits": a.act_bits,
                      "bias_correction": a.bias_correction, "gptq": a.gptq, "images": len(x)}), flush=True)
    print(json.dumps({"only_depthwise_weights": agree(set())[0]}), flush=True)
    if a.sweep:
        for n in names:
            only, eo = agree({n}, dw_q=False, n=a.sweep_images)
            but, eb = agree(set(names) - {n}, n=a.sweep_images)
            lo, hi = ranges[n]
            print(json.dumps({"layer": n, "range": [round(lo, 3), round(hi, 3)], "only": only,
                              "only_err": round(eo, 5), "all_but": but, "all_but_err": round(eb, 5)}), flush=True)


if __name__ == "__main__":
    main()
