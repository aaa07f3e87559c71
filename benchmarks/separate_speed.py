"""Separation speed and memory: real-time factor and peak RSS of ``wb`` inference.

For each input length (default 3 and 30 minutes of 44.1 kHz stereo noise) three runs, each in
its own subprocess so that peak RSS is measured separately:

* ``bare``   -- ``demucs.apply.apply_model`` called directly on the mixture already in the
  model's format (rate, channels): the reference;
* ``tensor`` -- :func:`separation.inference.separate_tensor` on the same input (our chunked
  inference: for Demucs models it wraps ``apply_model``; overhead must stay under 10 %);
* ``wb``     -- :func:`separation.files.separate_file`, i.e. ``wb separate`` on a 44.1 kHz stereo
  PCM_16 WAV file written beforehand: streamed decoding, resampling and channel conversion in
  and out, the model's post-filter (:mod:`separation.postfilter`; ``bare`` and ``tensor``
  run none), and writing every stem as a 44.1 kHz stereo WAV, all included.

Model: ``--model`` (anything ``wb separate --model`` accepts, or ``htdemucs-random``: the
architecture of the pretrained ``htdemucs``, 44.1 kHz stereo, with random weights, for the
Demucs speed comparison without the weights), else the shipped model when
installed, else a freshly initialised HTDemucs (channels=16, 16 kHz, mono, 4 sources, 4 s
segment) -- speed does not depend on the weights. The real-time factor is processing time /
audio duration (lower is faster). "RSS before" is the process's peak before separating (Python,
torch, the model, and for ``bare`` / ``tensor`` the synthetic input in memory, 0.64 GB per 30
minutes of 44.1 kHz stereo float32; ``wb`` reads it from the file block by block); "peak RSS"
is the peak over the whole run. The input file and the stems (5 x 0.3 GB per 30 minutes) go
to a temporary folder (``--tmp``) removed afterwards. The 30-minute case takes several
minutes on 2 CPU threads; ``--minutes 0.5`` gives a quick check.

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
    """``(separator, description)``."""
    from separation import models
    from separation.hub import PRETRAINED_DIR, load_separator, read_manifest
    from separation.separator import Separator

    if name == "htdemucs-random":  # the pretrained htdemucs' architecture, random weights
        import torch

        torch.manual_seed(0)
        model = models.build("htdemucs", ["drums", "bass", "other", "vocals"], 44100, 2,
                             segment=7.8, channels=48)  # fmt: skip
        return Separator.from_model(model), "HTDemucs as pretrained htdemucs (random weights)"
    if name:
        return load_separator(name), f"{name}"
    if "satb" in read_manifest(PRETRAINED_DIR)["models"]:
        return load_separator("satb"), "shipped model 'satb'"
    import torch

    torch.manual_seed(0)
    model = models.build(
        "htdemucs", ["soprano", "alto", "tenor", "bass"], 16000, 1, segment=4.0, channels=16
    )
    description = "freshly initialised HTDemucs channels=16, 16 kHz mono (no shipped model)"
    return Separator.from_model(model), description


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def write_input(path: Path, seconds: float) -> None:
    """``seconds`` of 44.1 kHz stereo noise (PCM_16 WAV), written block by block."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    n, block = int(seconds * INPUT_RATE), 10 * INPUT_RATE
    with sf.SoundFile(path, "w", INPUT_RATE, INPUT_CHANNELS, "PCM_16") as f:
        for i in range(0, n, block):
            f.write((0.1 * rng.standard_normal((min(block, n - i), INPUT_CHANNELS))).clip(-1, 1))


def _timed(mode: str, sep, mix, path, segment: float, overlap: float) -> float:
    """Seconds one separation takes (``mix``: model format in memory; ``path``: input file)."""
    import torch

    from separation.inference import separate_tensor

    start = time.perf_counter()
    if mode == "wb":
        import tempfile

        from separation.files import separate_file

        with tempfile.TemporaryDirectory(dir=Path(path).parent) as out:
            separate_file(sep.with_chunking(segment, overlap), path, out, quiet=True)
    elif mode == "tensor":
        out = separate_tensor(sep.model, mix, segment=segment, overlap=overlap, quiet=True)
        del out
    else:
        from fractions import Fraction

        from demucs.apply import apply_model

        with torch.no_grad():
            out = apply_model(
                sep.model, mix[None], shifts=0, split=True, overlap=overlap,
                segment=Fraction(segment).limit_denominator(10**6), progress=False,
            )  # fmt: skip
        del out
    return time.perf_counter() - start


def worker(args: argparse.Namespace) -> None:
    """Run one mode on one length in this process; print one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from wb.audio import convert_channels, resample

    sep, description = _model(args.model)
    segment = args.segment or sep.segment
    overlap = args.overlap if args.overlap is not None else sep.overlap
    mix = None
    if args.mode != "wb":
        n = int(args.seconds * INPUT_RATE)
        gen = torch.Generator().manual_seed(0)
        audio = torch.randn(INPUT_CHANNELS, n, generator=gen).mul_(0.1)
        mix = resample(convert_channels(audio, sep.audio_channels), INPUT_RATE, sep.sample_rate)
        del audio
    base_rss = _peak_rss_mb()
    if args.mode == "ab":
        times: dict[str, list[float]] = {"bare": [], "tensor": []}
        for _ in range(args.repeats):
            for mode in times:
                times[mode].append(_timed(mode, sep, mix, args.input, segment, overlap))
        print(json.dumps({k: min(v) for k, v in times.items()} | {"model": description}))
        return
    elapsed = _timed(args.mode, sep, mix, args.input, segment, overlap)
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


def _subprocess(args: argparse.Namespace, env: dict, mode: str, seconds: float, *extra: str):
    """Run one ``--mode`` worker in a fresh process; its JSON result, or ``None`` on failure
    (its stderr is printed)."""
    cmd = [sys.executable, __file__, "--mode", mode, "--seconds", str(seconds)]
    cmd += ["--threads", str(args.threads), *extra]
    for flag in ("model", "segment", "overlap"):
        if getattr(args, flag) is not None:
            cmd += [f"--{flag}", str(getattr(args, flag))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=4 * 3600)
    except subprocess.TimeoutExpired:
        print(f"{mode} {seconds:g} s: worker took longer than 4 h; skipped", file=sys.stderr)
        return None
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--mode``, one worker) and print the table; exit code."""
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
    parser.add_argument("--tmp", default=None, help="folder for the input file and the stems")
    parser.add_argument("--mode", choices=(*MODES, "ab"), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:
        worker(args)
        return 0

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "WB_QUIET": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if args.ab_minutes > 0:
        r = _subprocess(args, env, "ab", args.ab_minutes * 60, "--repeats", str(args.repeats))
        if r is None:
            return 1
        print(f"model: {r['model']}")
        print(
            f"interleaved A/B on {args.ab_minutes:g} min, best of {args.repeats}: bare apply_model "
            f"{r['bare']:.2f} s, separate_tensor {r['tensor']:.2f} s, overhead "
            f"{100 * (r['tensor'] / r['bare'] - 1):+.1f}%",
            flush=True,
        )
    header = False
    import tempfile

    with tempfile.TemporaryDirectory(prefix="wb-bench-", dir=args.tmp) as tmp:
        for minutes in (float(m) for m in args.minutes.split(",") if m.strip()):
            path = Path(tmp) / f"input-{minutes:g}min.wav"
            if "wb" in args.modes.split(","):
                write_input(path, minutes * 60)
            bare = None
            for mode in args.modes.split(","):
                r = _subprocess(args, env, mode, minutes * 60, "--input", str(path))
                if r is None:
                    return 1
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
                    f"{1 / r['rtf']:>7.1f} {r['rss_before_mb']:>14.0f} "
                    f"{r['peak_rss_mb']:>12.0f} {rel}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
