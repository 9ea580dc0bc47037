"""Writes crates/kestrel-models/tests/fixtures/timm_pretrained_cfgs.json: timm's eval data config
(timm.models.get_pretrained_cfg; a bare name is its default tag) for a few registry names, so
that tests/pretrained_cfgs.rs can compare kestrel's. Needs timm (no download: the configs ship
with timm's code)."""
import json
import pathlib

import timm

NAMES = [
    "resnet50",
    "resnet50.tv_in1k",
    "resnet50.a3_in1k",
    "resnet18d.ra4_e3600_r224_in1k",
    "resnet101d",
    "convnext_tiny",
    "convnext_atto",
    "efficientnet_b0",
    "regnety_032",
    "mobilenetv3_large_100",
    "vit_small_patch16_224",
    "swin_tiny_patch4_window7_224",
    # a name or two more per family (every family file declares timm's tags)
    "seresnext26t_32x4d",
    "seresnet50.a3_in1k",
    "efficientnet_b5",
    "tf_efficientnet_b0.ap_in1k",
    "tf_efficientnet_lite3",
    "mobilenetv1_100",
    "mobilenetv3_large_100.miil_in21k_ft_in1k",
    "regnetx_008.tv2_in1k",
    "regnety_160.swag_ft_in1k",
    "vit_small_patch16_224.augreg_in21k_ft_in1k",
    "vit_base_patch16_384",
    "deit_base_distilled_patch16_224",
    "swin_base_patch4_window7_224",
    "convnext_base.clip_laion2b_augreg_ft_in12k_in1k",
    "coatnet_nano_rw_224",
    "maxvit_tiny_tf_224.in1k",
]

out = {}
for name in NAMES:
    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    out[name] = {
        k: cfg.get(k)
        for k in [
            "input_size",
            "mean",
            "std",
            "crop_pct",
            "interpolation",
            "crop_mode",
            "test_input_size",
            "test_crop_pct",
        ]
    }
path = pathlib.Path(__file__).resolve().parent.parent / "crates/kestrel-models/tests/fixtures/timm_pretrained_cfgs.json"
path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
print(f"wrote {path} ({len(out)} names, timm {timm.__version__})")
