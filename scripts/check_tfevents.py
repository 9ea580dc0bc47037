#!/usr/bin/env python3
"""Reads a kestrel run's TensorBoard event files with TensorBoard's own reader and checks the
scalars against train_log.jsonl (CI has no TensorBoard; run this by hand).

    pip install tensorboard
    python3 scripts/check_tfevents.py RUN_DIR
"""

import json
import math
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    run = Path(sys.argv[1])
    acc = EventAccumulator(str(run))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    log = [json.loads(l) for l in (run / "train_log.jsonl").read_text().splitlines()]
    for tag in ["train/loss", "train/lr", "train/images_per_second", "epoch/val_accuracy",
                "epoch/train_loss", "epoch/lr"]:
        assert tag in tags, f"{tag} missing; TensorBoard sees {tags}"
    for key in ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"]:
        got = {e.step: e.value for e in acc.Scalars(f"epoch/{key}")}
        for entry in log:
            want = entry[key]
            assert math.isclose(got[entry["epoch"]], want, rel_tol=1e-6), (key, got, want)
    steps = [e.step for e in acc.Scalars("train/loss")]
    print(f"TensorBoard read {len(tags)} scalar tags, {len(steps)} steps of train/loss, "
          f"{len(log)} epochs matching train_log.jsonl")


if __name__ == "__main__":
    main()
