"""Separation speed and memory: real-time factor and peak RSS of ``wb`` inference.

For each input length (default 3 and 30 minutes of 44.1 kHz stereo noise) three runs, each in
its own subprocess so that peak RSS is measured separately:

* ``bare``   -- ``demucs.apply.apply_model`` called directly on the mixture already in the
  model's format (rate, channels): the reference;
* ``tensor`` -- :func:`separation.inference.separate_tensor` on the same input (our chunked
  inference: for Demucs models it wraps ``apply_model``; overhead must stay under 10 %);
* ``wb``     -- :func:`separation.inference.iter_separate` from the 44.1 kHz stereo input to
  44.1 kHz stereo stems (what ``wb separate`` does between decoding and writing: resampling
  and channel conversion in and out included).

Model: ``--model`` (anything ``wb separate --model`` accepts), else the shipped model when
installed, else a freshly initialised HTDemucs (channels=16, 16 kHz, mono, 4 sources, 4 s
segment) -- speed does not depend on the weights. The real-time factor is processing time /
audio duration (lower is faster). "RSS before" is the process's peak before separating (Python,
torch, the model and the synthetic input, 0.64 GB per 30 minutes of 44.1 kHz stereo float32);
"peak RSS" is the peak over the whole run. The 30-minute case takes several minutes on 2 CPU
threads; ``--minutes 0.5`` gives a quick check.

``--ab-minutes 0.5`` adds an interleaved comparison of ``bare`` and ``tensor`` in one process
(best of ``--repeats``), which stays meaningful when other jobs load the machine.

    python benchmarks/separate_speed.py --minutes 3,30 --threads 2
    python benchmarks/separate_speed.py --minutes '' --ab-minutes 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INPUT_RATE, INPUT_CHANNELS = 44100, 2
MODES = ("bare", "tensor", "wb")


def _model(name: str | None):
    """``(model, description)``."""
    from separation import models
    from separation.export import PRETRAINED_DIR, load_separator, read_manifest

    if name:
        return load_separator(name), f"{name}"
    if "satb" in read_manifest(PRETRAINED_DIR)["models"]:
        return load_separator("satb"), "shipped model 'satb'"
    import torch

    torch.manual_seed(0)
    model = models.build(
        "htdemucs", ["soprano", "alto", "tenor", "bass"], 16000, 1, segment=4.0, channels=16
    ).eval()
    model.overlap = 0.25
    return model, "freshly initialised HTDemucs channels=16, 16 kHz mono (no shipped model)"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _timed(mode: str, model, mix, audio, segment: float, overlap: float) -> float:
    """Seconds one separation takes (``mix``: model format; ``audio``: 44.1 kHz stereo)."""
    import torch

    from separation.inference import iter_separate, separate_tensor

    start = time.perf_counter()
    if mode == "wb":
        for _name, stem in iter_separate(
            model, audio, INPUT_RATE, segment=segment, overlap=overlap, quiet=True
        ):
            del stem
    elif mode == "tensor":
        out = separate_tensor(model, mix, segment=segment, overlap=overlap, quiet=True)
        del out
    else:
        from fractions import Fraction

        from demucs.apply import apply_model

        with torch.no_grad():
            out = apply_model(
                model, mix[None], shifts=0, split=True, overlap=overlap,
                segment=Fraction(segment).limit_denominator(10**6), progress=False,
            )  # fmt: skip
        del out
    return time.perf_counter() - start


def worker(args: argparse.Namespace) -> None:
    """Run one mode on one length in this process; print one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from separation.inference import model_segment
    from wb.audio import convert_channels, resample

    model, description = _model(args.model)
    n = int(args.seconds * INPUT_RATE)
    gen = torch.Generator().manual_seed(0)
    audio = torch.randn(INPUT_CHANNELS, n, generator=gen).mul_(0.1)
    segment = args.segment or model_segment(model)
    overlap = args.overlap if args.overlap is not None else getattr(model, "overlap", 0.25)
    base_rss = _peak_rss_mb()
    mix = None
    if args.mode != "wb":
        mix = resample(
            convert_channels(audio, int(model.audio_channels)), INPUT_RATE, int(model.samplerate)
        )
        del audio
        audio = None
    if args.mode == "ab":
        times: dict[str, list[float]] = {"bare": [], "tensor": []}
        for _ in range(args.repeats):
            for mode in times:
                times[mode].append(_timed(mode, model, mix, audio, segment, overlap))
        print(json.dumps({k: min(v) for k, v in times.items()} | {"model": description}))
        return
    elapsed = _timed(args.mode, model, mix, audio, segment, overlap)
    print(
        json.dumps(
            {
                "mode": args.mode,
                "seconds": args.seconds,
                "elapsed": elapsed,
                "rtf": elapsed / args.seconds,
                "peak_rss_mb": _peak_rss_mb(),
                "rss_before_mb": base_rss,
                "model": description,
            }
        ),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model name or path (default: see above)")
    parser.add_argument(
        "--minutes", default="3,30", help="comma-separated input lengths ('' for none)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--segment", type=float, default=None, help="chunk seconds")
    parser.add_argument("--overlap", type=float, default=None, help="chunk overlap fraction")
    parser.add_argument("--modes", default=",".join(MODES), help="subset of bare,tensor,wb")
    parser.add_argument(
        "--ab-minutes",
        type=float,
        default=0.0,
        help="also time bare vs tensor interleaved in one process on an input this long, "
        "best of --repeats (robust to other load on the machine)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="repeats for --ab-minutes")
    parser.add_argument("--mode", choices=(*MODES, "ab"), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:
        worker(args)
        return 0

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "WB_QUIET": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if args.ab_minutes > 0:
        cmd = [sys.executable, __file__, "--mode", "ab", "--seconds", str(args.ab_minutes * 60)]
        cmd += ["--threads", str(args.threads), "--repeats", str(args.repeats)]
        for flag in ("model", "segment", "overlap"):
            if getattr(args, flag) is not None:
                cmd += [f"--{flag}", str(getattr(args, flag))]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"model: {r['model']}")
        print(
            f"interleaved A/B on {args.ab_minutes:g} min, best of {args.repeats}: bare apply_model "
            f"{r['bare']:.2f} s, separate_tensor {r['tensor']:.2f} s, overhead "
            f"{100 * (r['tensor'] / r['bare'] - 1):+.1f}%",
            flush=True,
        )
    header = False
    for minutes in (float(m) for m in args.minutes.split(",") if m.strip()):
        bare = None
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, "--mode", mode, "--seconds", str(minutes * 60)]
            cmd += ["--threads", str(args.threads)]
            for flag in ("model", "segment", "overlap"):
                if getattr(args, flag) is not None:
                    cmd += [f"--{flag}", str(getattr(args, flag))]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            if not header:  # rows are printed as they finish: an interrupted run keeps them
                print(f"model: {r['model']}")
                print(
                    f"input: {INPUT_RATE} Hz stereo noise; {args.threads} CPU threads; "
                    "RTF = processing time / audio duration; load average at start "
                    f"{os.getloadavg()[0]:.1f}"
                )
                print(
                    f"{'minutes':>8} {'mode':>7} {'time s':>9} {'RTF':>7} {'x real':>7} "
                    f"{'RSS before MB':>14} {'peak RSS MB':>12} {'vs bare':>8}"
                )
                header = True
            if mode == "bare":
                bare = r["elapsed"]
            rel = f"{100 * (r['elapsed'] / bare - 1):+7.1f}%" if bare else f"{'':>8}"
            print(
                f"{minutes:>8g} {mode:>7} {r['elapsed']:>9.1f} {r['rtf']:>7.3f} "
                f"{1 / r['rtf']:>7.1f} {r['rss_before_mb']:>14.0f} {r['peak_rss_mb']:>12.0f} {rel}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
