"""Speed of ``wb transcribe``'s model path: real-time factor on CPU threads.

Transcribes the real SSVD validation recordings from their files, as ``wb transcribe``
does (streamed decoding, stream resampling to 16 kHz, windows encoded and decoded in
batches), and prints one row per decoder (the event decoder greedy and with a beam search of
``--beam`` prefixes, the frame head): audio seconds, wall seconds, times faster than real
time. The goal of the voice2midi issue is >= 20x on 2 threads.

    python benchmarks/transcribe_speed.py --threads 2
    python benchmarks/transcribe_speed.py --model runs/voice2midi/<run>/voice2midi.pt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    """Print the table."""
    import torch

    from music.transcription import ssvd
    from music.transcription.inference import load_transcriber, transcribe_file
    from music.transcription.stages import SHIPPED

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(SHIPPED), help="model file (default: shipped)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--root", default=str(ssvd.DEFAULT_ROOT), help="SSVD recordings")
    parser.add_argument("--files", type=int, default=15, help="SSVD validation files to use")
    parser.add_argument("--batch-windows", type=int, default=8)
    parser.add_argument("--beam", type=int, default=4, help="prefixes of the beam-search row")
    parser.add_argument(
        "--length-penalty", type=float, default=1.0, help="GNMT exponent of the beam-search row"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_transcriber(args.model)
    files = [a for _, a, _ in ssvd.split(args.root)["valid"]][: args.files]
    print(f"model {Path(args.model).name}, {args.threads} threads, {len(files)} SSVD files\n")
    print("| decoder | audio (s) | wall (s) | x real time |\n|---|---:|---:|---:|")
    rows = (("seq2seq", 1), ("seq2seq", args.beam), ("frames", 1))
    for method, beam in rows:
        kwargs = {"beam": beam, "length_penalty": args.length_penalty}
        transcribe_file(model, files[0], method, args.batch_windows, **kwargs)  # warm-up
        audio = wall = 0.0
        for f in files:
            t0 = time.perf_counter()
            _, duration = transcribe_file(model, f, method, args.batch_windows, **kwargs)
            wall += time.perf_counter() - t0
            audio += duration
        name = f"{method}, beam {beam}" if beam > 1 else method
        print(f"| {name} | {audio:.1f} | {wall:.1f} | {audio / wall:.1f} |")


if __name__ == "__main__":
    main()
