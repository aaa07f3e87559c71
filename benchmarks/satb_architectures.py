"""SATB architectures on equal CPU time: HTDemucs, HDemucs and Conv-TasNet, trained from
scratch on the same chorale data for the same wall-clock minutes on the same threads.

Each model trains with the recipe's ``train`` stage (``python -m recipes.satb_separation
train``; the recipe's ``conf.yml`` with the ``model:`` group replaced, shorter epochs so the
time limit cuts close to ``--minutes``, one validation segment per track), then its best
checkpoint is scored with SI-SDR on the validation split of the training data (in-domain) and
on the validation split rendered with the sound font held out of training (unseen). The
table gives the CPU-hours the training process really used (user + system time, so other
load on the machine shows up as fewer CPU-hours rather than as a worse model), optimizer
steps, parameters, and mean SI-SDR / SI-SDRi over the four voices, mean over tracks, at the
data's rate through the ``wb separate`` path (the recipe's ``evaluate.rate``).

    python benchmarks/satb_architectures.py --minutes 15 --threads 2 \\
        --root data/chorales_perf --unseen-root data/chorales_perf_unseen

The runs go to ``--out/<model>`` (``runs/satb_separation/arch`` by default); a finished run is
not retrained, so after an interruption the script continues with the next model (an
unfinished run's folder must be deleted first: the CPU-time budget cannot be resumed).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "recipes" / "satb_separation" / "conf.yml"
# sizes that train on 2 CPU cores at 8 kHz (about 1-1.5 s per batch of 4 x 4 s)
MODELS = {
    "htdemucs": {"name": "htdemucs", "channels": 16},
    "hdemucs": {"name": "hdemucs", "channels": 16},
    "convtasnet": {
        "name": "convtasnet", "n_filters": 128, "kernel_size": 32, "stride": 16,
        "bn_chan": 64, "hid_chan": 128, "skip_chan": 64, "n_repeats": 2,
    },
}  # fmt: skip
LR = {"htdemucs": 6e-4, "hdemucs": 6e-4, "convtasnet": 1e-3}


def _config(arch: str, root: str, minutes: float, threads: int, rate: int) -> dict:
    cfg = yaml.safe_load(CONF.read_text())
    cfg.pop("quick", None)
    base = cfg["model"]
    cfg["model"] = {
        **MODELS[arch],
        "sources": base["sources"],
        "sample_rate": rate,
        "audio_channels": base["audio_channels"],
    }
    cfg["data"]["root"] = root
    cfg["train"].update(
        epochs=1000, time_limit_minutes=minutes, threads=threads, samples_per_epoch=400,
        valid_segments_per_track=1, lr=LR[arch], warmup_steps=50, init_from=None,
    )  # fmt: skip
    return cfg


def _child_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    import resource

    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _val_curve(run: Path) -> list[dict]:
    rows = []
    for f in sorted((run / "csv").glob("version_*/metrics.csv")):
        with f.open() as fh:
            rows += [r for r in csv.DictReader(fh) if r.get("val/si_sdr")]
    return rows


def _score(run: Path, root: str, split: str, max_tracks: int | None) -> dict:
    out = run / f"score_{Path(root).name}_{split}_{max_tracks or 'all'}.json"
    if not out.is_file():
        cmd = [
            sys.executable, "-m", "recipes.satb_separation", "evaluate", "--run", str(run),
            "--root", root, "--split", split, "--no-bsseval", "--no-oracle", "--out", str(out),
            "--quiet",
        ]  # fmt: skip
        if max_tracks:
            cmd += ["--max-tracks", str(max_tracks)]
        subprocess.run(cmd, check=True, cwd=ROOT)
    return json.loads(out.read_text())["mean"]


def main() -> int:
    """Train every ``--models`` entry for ``--minutes`` and print the comparison table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="data/chorales_perf")
    ap.add_argument("--unseen-root", default="data/chorales_perf_unseen")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sample-rate", type=int, default=8000, help="model rate (Hz)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--max-tracks", type=int, default=None)
    ap.add_argument("--out", default="runs/satb_separation/arch")
    args = ap.parse_args()
    rows = []
    for arch in args.models.split(","):
        run = ROOT / args.out / arch
        cfg_file = ROOT / args.out / f"{arch}.yml"
        if run.exists() and not (run / "seconds.json").is_file():
            raise SystemExit(f"error: {run} holds an unfinished run; delete it to train again")
        if not (run / "checkpoints" / "best.ckpt").is_file():
            cfg_file.parent.mkdir(parents=True, exist_ok=True)
            cfg = _config(arch, args.root, args.minutes, args.threads, args.sample_rate)
            cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
            t0, cpu0 = time.time(), _child_cpu()
            subprocess.run(
                [sys.executable, "-m", "recipes.satb_separation", "train", "--config",
                 str(cfg_file), "--run", str(run), "--quiet"],
                check=True, cwd=ROOT,
            )  # fmt: skip
            (run / "seconds.json").write_text(
                json.dumps({"wall": time.time() - t0, "cpu": _child_cpu() - cpu0})
            )
        seconds = json.loads((run / "seconds.json").read_text())
        curve = _val_curve(run)
        steps = max((int(r["step"]) for r in curve), default=0)
        import torch

        state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu",
                           weights_only=True)["state_dict"]  # fmt: skip
        params = sum(v.numel() for k, v in state.items() if v.is_floating_point())
        seen = _score(run, args.root, args.split, args.max_tracks)
        unseen = _score(run, args.unseen_root, args.split, args.max_tracks)
        rows.append((arch, params, seconds["cpu"] / 3600, steps, seen, unseen))
    print(f"\nvalidation split '{args.split}', mean over voices and tracks, dB")
    print("| model | parameters | CPU-hours | steps | in-domain SI-SDR | in-domain SI-SDRi "
          "| unseen SI-SDR | unseen SI-SDRi |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for arch, params, cpu_h, steps, seen, unseen in rows:
        print(
            f"| {arch} | {params / 1e6:.2f} M | {cpu_h:.2f} | {steps} | {seen['SI-SDR']:.2f} "
            f"| {seen['SI-SDRi']:.2f} | {unseen['SI-SDR']:.2f} | {unseen['SI-SDRi']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
