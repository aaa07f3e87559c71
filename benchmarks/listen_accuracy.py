"""Accuracy of ``wb classify listen``'s streaming path on real recordings.

Streams every file of a folder through :func:`classify.listen.listen` (``--fast``: the same
sliding window, resampling and ring buffer as the microphone) and compares the session's
top-1 (highest mean probability over its windows) with the label in the file name's first
field (FSDD: ``<digit>_<speaker>_<take>.wav``). ``--max-take 4`` keeps FSDD's official test
part (takes 0-4), which the model of ``recipes.fsdd --protocol official`` never trained on.

    python benchmarks/listen_accuracy.py --checkpoint runs/classify/fsdd-official-cnn/model.pt \\
        --folder ../shared/data/fsdd/recordings --max-take 4
"""

from __future__ import annotations

import argparse
import io
import re
import time
from pathlib import Path


def main() -> None:
    """Print a one-row table: files, right top-1, accuracy, seconds."""
    from classify.listen import Display, listen, summary

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--max-take", type=int, default=None, help="FSDD: keep takes <= N")
    parser.add_argument("--hop", type=float, default=0.5)
    args = parser.parse_args()
    files = sorted(Path(args.folder).glob("*.wav"))
    if args.max_take is not None:
        files = [f for f in files if int(re.search(r"_(\d+)$", f.stem).group(1)) <= args.max_take]
    t0, right = time.time(), 0
    for f in files:
        frames, classes = listen(args.checkpoint, f, fast=True, hop_seconds=args.hop,
                                 display=Display(1, stream=io.StringIO(), live=False))  # fmt: skip
        right += summary(frames, classes)[0] == f.stem.split("_")[0]
    print("| files | top-1 right | accuracy | seconds |\n|---:|---:|---:|---:|")
    print(f"| {len(files)} | {right} | {100 * right / max(1, len(files)):.2f} % "
          f"| {time.time() - t0:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
