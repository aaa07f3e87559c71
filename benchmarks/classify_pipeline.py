"""Classification input pipeline speed on FSDD: batched front end vs librosa, cache vs decoding.

Prints a table:

* feature extraction, clips/s: :class:`classify.frontends.Frontend` (torchaudio, batches of
  clips padded to 1 s) vs ``librosa.feature.melspectrogram`` + ``power_to_db`` one file at a
  time (the file read included in both: cache read vs soundfile);
* one training epoch (data loading + forward/backward of the recipe's CNN) reading clips from
  :class:`wb.training.audio_cache.AudioCache` vs decoding every file with :func:`wb.audio.load` each
  epoch; and the data-loading part alone.

Usage::

    python benchmarks/classify_pipeline.py [--data-dir /work/shared/data/fsdd] [--threads 1]
        [--max-clips 3000] [--cache-dir /tmp/wb-bench-cache]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader


class DecodeEveryTime:
    """Indexable like :class:`~wb.training.audio_cache.AudioCache`, but decodes the file on
    each access."""

    def __init__(self, paths, sample_rate: int) -> None:
        self.paths, self.sr = list(paths), sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        from wb.audio import load

        return load(self.paths[i], sample_rate=self.sr, channels=1)[0][0].numpy()


def bench_features(paths, cache, fe_cfg: dict, sr: int, n: int) -> tuple[float, float]:
    """Clips/s of the batched torchaudio front end and of librosa file by file."""
    import librosa
    import soundfile as sf

    from classify.frontends import Frontend, pad_to

    fe = Frontend(sample_rate=sr, **fe_cfg)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(cache), 256):
            batch = np.stack([pad_to(cache[i], n) for i in range(s, min(s + 256, len(cache)))])
            fe(torch.from_numpy(batch))
    torch_rate = len(cache) / (time.perf_counter() - t0)

    y0 = pad_to(sf.read(str(paths[0]), dtype="float32")[0], n)
    kw = dict(sr=sr, n_fft=fe_cfg["n_fft"], hop_length=fe_cfg["hop_length"],
              win_length=fe_cfg["win_length"], n_mels=fe_cfg["n_mels"], fmin=fe_cfg["f_min"],
              fmax=fe_cfg["f_max"], pad_mode="constant")  # fmt: skip
    librosa.power_to_db(librosa.feature.melspectrogram(y=y0, **kw), top_db=80)  # warm-up
    t0 = time.perf_counter()
    for p in paths:
        y = pad_to(sf.read(str(p), dtype="float32")[0], n)
        librosa.power_to_db(librosa.feature.melspectrogram(y=y, **kw), top_db=80)
    librosa_rate = len(paths) / (time.perf_counter() - t0)
    return torch_rate, librosa_rate


def bench_epoch(audio, indices, labels, cfg: dict, train: bool) -> float:
    """Seconds for one epoch over ``indices``: data loading, plus a training step if ``train``."""
    from classify.frontends import LengthPolicy
    from classify.models import Classifier
    from classify.train import TrainClips
    from wb.training.sampler import EpochSampler

    policy = LengthPolicy(**cfg["data"])
    sr = cfg["frontend"]["sample_rate"]
    n = policy.n_samples(sr)
    ds = TrainClips(audio, indices, labels, n, policy, seed=0)
    loader = DataLoader(ds, batch_size=64, sampler=EpochSampler(len(ds), 0, shuffle=True))
    fe = {k: v for k, v in cfg["frontend"].items() if k != "sample_rate"}
    head = cfg["model"][cfg["model"]["name"]]
    model = Classifier(10, sr, n, fe, {"name": cfg["model"]["name"], **head})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for wave, y in loader:
        if train:
            loss = torch.nn.functional.cross_entropy(model(wave), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/work/shared/data/fsdd")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--max-clips", type=int, default=3000)
    ap.add_argument("--cache-dir", default=None, help="cache folder (default: a fresh temp dir)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from classify.config import resolve_config
    from classify.datasets import get_dataset
    from wb.training.audio_cache import AudioCache

    cfg = resolve_config("fsdd")
    ds = get_dataset("fsdd", data_dir=args.data_dir)
    clips = ds.clips[: args.max_clips]
    paths = [c.path for c in clips]
    labels = [c.label for c in clips]
    sr = int(cfg["frontend"]["sample_rate"])
    n = int(round(cfg["data"]["seconds"] * sr))
    fe_cfg = {k: cfg["frontend"][k] for k in
              ("n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max")}  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(args.cache_dir or tmp)
        t0 = time.perf_counter()
        cache = AudioCache(clips, sample_rate=sr, cache_dir=cache_dir, name="bench-fsdd",
                           progress=False)  # fmt: skip
        build = time.perf_counter() - t0
        torch_rate, librosa_rate = bench_features(paths, cache, fe_cfg, sr, n)
        idx = list(range(len(clips)))
        decode = DecodeEveryTime(paths, sr)
        load_cache = bench_epoch(cache, idx, labels, cfg, train=False)
        load_decode = bench_epoch(decode, idx, labels, cfg, train=False)
        ep_cache = bench_epoch(cache, idx, labels, cfg, train=True)
        ep_decode = bench_epoch(decode, idx, labels, cfg, train=True)

    rows = [
        ("feature extraction: torchaudio Frontend, batched (clips/s)", f"{torch_rate:,.0f}"),
        ("feature extraction: librosa melspectrogram, per file (clips/s)", f"{librosa_rate:,.0f}"),
        ("  speed-up", f"{torch_rate / librosa_rate:.1f}x"),
        ("audio cache build, once (s)", f"{build:.1f}"),
        ("data loading per epoch, cache (s)", f"{load_cache:.2f}"),
        ("data loading per epoch, decode every file (s)", f"{load_decode:.2f}"),
        ("training epoch (cnn), cache (s)", f"{ep_cache:.1f}"),
        ("training epoch (cnn), decode every file (s)", f"{ep_decode:.1f}"),
    ]
    print(f"FSDD, {len(clips)} clips, {sr} Hz, {n / sr:g} s inputs, "
          f"{torch.get_num_threads()} torch thread(s)")  # fmt: skip
    w = max(len(r[0]) for r in rows)
    print(f"| {'measure':<{w}} | value |\n|{'-' * (w + 2)}|------:|")
    for name, value in rows:
        print(f"| {name:<{w}} | {value} |")


if __name__ == "__main__":
    main()
