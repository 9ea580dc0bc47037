#!/usr/bin/env python3
"""Peer figure for `kestrel data-bench`: torchvision's input pipeline over the same ImageFolder.

torchvision.datasets.ImageFolder (PIL decode) + transforms.Compose([RandomResizedCrop(224),
RandomHorizontalFlip(), RandAugment(2, 9), ToTensor(), Normalize(ImageNet mean/std)]) +
DataLoader(num_workers=N, batch_size=B, shuffle=True), torch.set_num_threads(1) in the workers
(and in the main process). Full epochs are iterated and timed from the first `iter(loader)` to
the last batch, so worker start-up is inside the epoch, as it is for kestrel. The first epoch
warms the page cache; report the best one.

Prints one JSON object: {images, epoch_images_per_second, best_images_per_second, ...}.
cpu_ms_per_image is user + system CPU time (all processes/threads) per image over all epochs
(for kestrel: its whole process): on a shared, loaded machine it is steadier than images/s.

With --kestrel BIN, the same invocation also runs `BIN data-bench` on the same folder (same
batch size and epochs; --val-dir DIR as well, so that its training split is the whole folder,
the same images torchvision reads), once per
--kestrel-workers value and --kestrel-recipe, alternating with the torchvision runs for
--rounds rounds; the JSON then also holds "kestrel" (one entry per kestrel run) and "ratios"
(best kestrel / best torchvision images/s, per kestrel configuration).

--pipeline picks the torchvision pipeline: randaugment (the above, default), basic (no
RandAugment), decode (ImageFolder's PIL open + convert("RGB") only, batches are lists).
--erasing P appends RandomErasing(P) after Normalize (kestrel's `randaugment` preset has 0.25).

Usage: python3 scripts/bench_data_peers.py /tmp/bench_photos [--workers 2] [--batch-size 64]
       [--epochs 2] [--kestrel /tmp/kestrel-bench] [--kestrel-workers 2,0]
       [--kestrel-recipe randaugment] [--rounds 1] [--pipeline randaugment] [--erasing 0]
"""
import argparse, json, os, subprocess, sys, tempfile, time

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds():
    """User + system CPU time of this process and of its waited-for children (DataLoader workers,
    kestrel runs): a figure that contention on a shared machine barely moves."""
    import resource
    t = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        t += r.ru_utime + r.ru_stime
    return t


def worker_init(_):
    import torch
    torch.set_num_threads(1)


def list_collate(batch):
    return batch


def build_transform(pipeline, erasing):
    from torchvision import transforms as T
    if pipeline == "decode":
        return None
    ts = [T.RandomResizedCrop(224), T.RandomHorizontalFlip()]
    if pipeline == "randaugment":
        ts.append(T.RandAugment(num_ops=2, magnitude=9))
    ts += [T.ToTensor(), T.Normalize(MEAN, STD)]
    if erasing > 0:
        ts.append(T.RandomErasing(p=erasing))
    return T.Compose(ts)


def run_torchvision(a):
    import torch
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    torch.set_num_threads(1)
    ds = ImageFolder(a.dir, transform=build_transform(a.pipeline, a.erasing))
    loader = DataLoader(
        ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
        worker_init_fn=worker_init if a.workers > 0 else None,
        collate_fn=list_collate if a.pipeline == "decode" else None,
    )
    load = loadavg()
    rates = []
    cpu0 = cpu_seconds()
    for epoch in range(max(1, a.epochs)):
        t = time.perf_counter()
        n = 0
        for batch in loader:
            n += len(batch) if a.pipeline == "decode" else len(batch[1])
        rate = n / (time.perf_counter() - t)
        print(f"torchvision epoch {epoch}: {n} images, {rate:.1f} images/s", file=sys.stderr)
        rates.append(round(rate, 1))
    cpu = cpu_seconds() - cpu0
    return {
        "peer": f"torchvision {__import__('torchvision').__version__}, torch {torch.__version__}",
        "pipeline": a.pipeline + (f" + RandomErasing({a.erasing})" if a.erasing > 0 else ""),
        "images": len(ds),
        "batch_size": a.batch_size,
        "workers": a.workers,
        "epoch_images_per_second": rates,
        "best_images_per_second": max(rates),
        "cpu_ms_per_image": round(1000 * cpu / (len(ds) * len(rates)), 2),
        "loadavg_before": load,
    }


def run_kestrel(a, workers, recipe):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "kestrel.json")
        cmd = [a.kestrel, "data-bench", "--data", a.dir, "--val-dir", a.dir,
               "--recipe", recipe, "--workers", str(workers), "--batch-size", str(a.batch_size),
               "--epochs", str(a.epochs), "--json", out]
        load = loadavg()
        cpu0 = cpu_seconds()
        p = subprocess.run(cmd, capture_output=True, text=True)
        cpu = cpu_seconds() - cpu0
        sys.stderr.write("".join(f"kestrel[{recipe}, w{workers}] {l}\n"
                                 for l in p.stdout.splitlines()))
        if p.returncode != 0:
            sys.exit(f"kestrel failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
        r = json.load(open(out))
    r["epoch_images_per_second"] = [round(x, 1) for x in r["epoch_images_per_second"]]
    r["best_images_per_second"] = round(r["best_images_per_second"], 1)
    r["cpu_ms_per_image"] = round(1000 * cpu / (r["images"] * len(r["epoch_images_per_second"])), 2)
    r["loadavg_before"] = load
    r["command"] = " ".join(cmd[:-2])
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--pipeline", choices=["randaugment", "basic", "decode"], default="randaugment")
    p.add_argument("--erasing", type=float, default=0.0)
    p.add_argument("--kestrel", help="path to a kestrel binary to run on the same folder")
    p.add_argument("--kestrel-workers", default="2",
                   help="comma-separated --workers values for kestrel (0 = all cores)")
    p.add_argument("--kestrel-recipe", action="append",
                   help="kestrel --recipe (repeatable; default: randaugment)")
    p.add_argument("--rounds", type=int, default=1,
                   help="alternate kestrel and torchvision runs this many times")
    p.add_argument("--no-torchvision", action="store_true")
    a = p.parse_args()
    recipes = a.kestrel_recipe or ["randaugment"]
    kw = [int(x) for x in a.kestrel_workers.split(",") if x.strip()]

    tv_runs, k_runs = [], []
    for _ in range(max(1, a.rounds)):
        if a.kestrel:
            for recipe in recipes:
                for w in kw:
                    k_runs.append(run_kestrel(a, w, recipe))
        if not a.no_torchvision:
            tv_runs.append(run_torchvision(a))

    if tv_runs:
        best = max(tv_runs, key=lambda r: r["best_images_per_second"])
        result = dict(best)
        if len(tv_runs) > 1:
            result["runs"] = tv_runs
    else:
        result = {}
    if k_runs:
        result["kestrel"] = k_runs
        if tv_runs:
            ratios = {}
            for r in k_runs:
                key = f"{r['recipe']} workers={r['workers']}"
                ratio = round(r["best_images_per_second"] / result["best_images_per_second"], 2)
                ratios[key] = max(ratios.get(key, 0.0), ratio)
            result["ratios"] = ratios
    result["nproc"] = os.cpu_count()
    result["loadavg_after"] = loadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
