"""The event vocabulary, the encoder-decoder, windowed inference and training of voice2midi."""

from __future__ import annotations

import itertools

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from music.transcription import tokens as T
from music.transcription.data import NoteWindows, Recording, collate, frame_targets
from music.transcription.inference import (
    frames_to_notes,
    transcribe_array,
    transcribe_blocks,
    transcribe_file,
)
from music.transcription.model import Transcriber

TINY = dict(d_model=32, ff=64, n_heads=2, encoder_layers=1, decoder_layers=1,
            conv_channels=(4, 4, 4), window=2.0, max_tokens=64)  # fmt: skip


def random_line(rng: np.random.Generator, n: int = 30, long_every: int = 0) -> np.ndarray:
    """A monophonic line on the 10 ms grid; every ``long_every``-th note lasts 9 s."""
    t, notes = 0.3, []
    for i in range(n):
        d = 9.0 if long_every and i % long_every == long_every - 1 else rng.uniform(0.1, 1.2)
        notes.append((t, t + d, int(rng.integers(40, 80))))
        t += d + (0.0 if rng.random() < 0.4 else rng.uniform(0.02, 0.5))
    return np.round(np.array(notes, dtype=np.float64), 2)


@pytest.mark.parametrize("window", [4.0, 2.5])
def test_tokens_round_trip_across_windows(window):
    vocab = T.Vocabulary(window=window)
    notes = random_line(np.random.default_rng(1), 40, long_every=7)  # notes across windows
    end = notes[-1, 1] + 0.5
    starts = np.arange(0.0, end, window)
    seqs = [T.encode(notes, s, vocab) for s in starts]
    assert all(s[-1] == T.EOS for s in seqs)
    assert any(s[0] != T.TIE_END for s in seqs)  # some windows open with ties
    out = T.decode_windows(seqs, starts, vocab, end)
    assert out.shape == notes.shape
    np.testing.assert_allclose(out, notes, atol=1e-9)


@pytest.mark.parametrize(
    "notes",
    [
        [[4.0, 5.0, 60]],  # onset exactly at a window start
        [[3.0, 4.0, 60]],  # offset exactly at a window end
        [[3.996, 5.0, 60]],  # onset in the last 5 ms of a window
        [[3.0, 4.0, 60], [4.0, 5.0, 60]],  # a repeated pitch across the boundary
        [[3.0, 4.004, 60]],  # a tie whose offset rounds to time 0
        [[1.0, 1.003, 62], [2.0, 2.5, 64]],  # shorter than one time step: left out
    ],
)
def test_tokens_at_window_boundaries(notes):
    vocab = T.Vocabulary(window=4.0)
    notes = np.array(notes, dtype=np.float64)
    starts = [0.0, 4.0]
    out = T.decode_windows([T.encode(notes, s, vocab) for s in starts], starts, vocab, 8.0)
    keep = np.round(notes[:, 1] / 0.01) > np.round(notes[:, 0] / 0.01)
    np.testing.assert_allclose(out, np.round(notes[keep] / 0.01) * 0.01, atol=1e-9)


@pytest.mark.parametrize("window,hop", [(4.0, 160), (4.05, 160), (2.01, 160), (4.0, 300)])
def test_frame_count_matches_the_encoder(window, hop):
    model = Transcriber(**{**TINY, "window": window, "hop_length": hop}).eval()
    with torch.no_grad():
        memory, frames = model.encode(torch.zeros(1, model.samples))
    assert memory.shape[1] == frames.shape[1] == model.frames
    pitch, onset = frame_targets(np.zeros((0, 3)), 0.0, model.frames, model.frame_seconds,
                                 model.vocab)  # fmt: skip
    assert pitch.shape == onset.shape == (model.frames,)


def test_bad_model_and_token_arguments_are_value_errors():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        Transcriber(**{**TINY, "n_heads": 3})
    vocab = T.Vocabulary()
    with pytest.raises(ValueError, match="outside"):
        vocab.on(vocab.max_pitch + 1)
    model = Transcriber(**TINY).eval()
    with pytest.raises(ValueError, match="max_tokens"):
        model(torch.zeros(1, model.samples), torch.ones(1, model.max_tokens + 2, dtype=torch.long))


def test_encode_orders_offs_before_ons_and_shares_time_tokens():
    vocab = T.Vocabulary()
    notes = np.array([[0.5, 1.0, 60], [1.0, 1.5, 62]])
    seq = [vocab.describe(t) for t in T.encode(notes, 0.0, vocab)]
    assert seq == ["TIE_END", "time 0.50", "on 60", "time 1.00", "off 60", "on 62",
                   "time 1.50", "off 62", "EOS"]  # fmt: skip


def test_out_of_range_pitches_are_left_out():
    vocab = T.Vocabulary(min_pitch=40, max_pitch=80)
    seq = T.encode(np.array([[0.1, 0.5, 30], [0.6, 0.9, 81.4], [1.0, 1.2, 80.4]]), 0.0, vocab)
    assert [vocab.describe(t) for t in seq if t >= vocab.on0] == ["on 80", "off 80"]


def test_parse_is_lenient_with_malformed_sequences():
    vocab = T.Vocabulary()
    bad = [T.BOS, vocab.on(60), vocab.off(61), T.TIE_END, vocab.on(62), vocab.time(1.0),
           vocab.on(64), vocab.time(0.5), vocab.off(64), T.TIE_END, T.EOS,
           vocab.on(70)]  # fmt: skip
    w = T.parse(bad, vocab)
    assert w.ties == {60}
    # the note before any time token sits at 0; the earlier time token is clamped to 1.0
    assert w.events == [(0.0, True, 62), (1.0, True, 64), (1.0, False, 64)]
    assert T.parse([], vocab).events == []


def test_stitcher_continues_only_tied_notes():
    vocab = T.Vocabulary(window=2.0)
    w1 = [T.TIE_END, vocab.time(1.0), vocab.on(60), T.EOS]
    tied = [vocab.on(60), T.TIE_END, vocab.time(0.5), vocab.off(60), T.EOS]
    untied = [T.TIE_END, vocab.time(0.5), vocab.on(62), T.EOS]
    out = T.decode_windows([w1, tied], [0.0, 2.0], vocab, 4.0)
    np.testing.assert_allclose(out, [[1.0, 2.5, 60]])
    out = T.decode_windows([w1, untied], [0.0, 2.0], vocab, 4.0)
    np.testing.assert_allclose(out, [[1.0, 2.0, 60], [2.5, 4.0, 62]])


@pytest.mark.parametrize("time_encoding", [False, True])
def test_cached_greedy_decoding_matches_full_decoding(time_encoding):
    torch.manual_seed(0)
    model = Transcriber(**TINY, time_encoding=time_encoding).eval()
    audio = torch.randn(3, model.samples) * 0.1
    with torch.no_grad():
        memory, _ = model.encode(audio)
        seqs = model.generate(memory, max_len=12)
        assert all(len(q) == 12 for q in seqs)
        model.out.bias.data[T.EOS] += 1e4  # every window ends at once: the done/PAD path
        assert model.generate(memory, max_len=12) == [[T.EOS]] * 3
        model.out.bias.data[T.EOS] -= 1e4
        mem_kv = [layer.memory_kv(memory) for layer in model.decoder]
        for b, seq in enumerate(seqs):
            inp = torch.tensor([[T.BOS, *seq[:-1]]])
            kv = [(k[b : b + 1], v[b : b + 1]) for k, v in mem_kv]
            logits = model._decode(inp, kv, None, 0)[0]
            logits[:, [T.PAD, T.BOS]] = -torch.inf
            assert logits.argmax(-1).tolist() == seq


def test_time_encoding_aligns_time_tokens_with_frames():
    model = Transcriber(**TINY, time_encoding=True)
    vocab = model.vocab
    for t in (0.0, 0.5, 1.37):  # a time token is most similar to the frame that holds t
        sim = model.frame_time @ model.token_time[vocab.time(t)]
        assert abs(int(sim.argmax()) * model.frame_seconds - t) <= model.frame_seconds
    assert model.token_time[vocab.on(60)].abs().sum() == 0  # only time tokens carry time
    assert "frame_time" not in model.state_dict()  # weights stay portable


def test_frames_to_notes_segments_pitch_changes_and_onsets():
    n_p = 61
    logits = np.full((50, n_p + 2), -10.0)
    logits[:, n_p] = 10.0  # "no note" everywhere ...
    logits[:, -1] = -10.0
    for a, b, p in ((5, 15, 24), (15, 25, 26), (25, 35, 26), (40, 41, 30)):
        logits[a:b, n_p] = -10.0
        logits[a:b, p] = 10.0
    logits[25, -1] = 10.0  # a repeated note: onset without a pitch change
    notes = frames_to_notes(logits, 0.02, 36)
    np.testing.assert_allclose(notes, [[0.1, 0.3, 60], [0.3, 0.5, 62], [0.5, 0.7, 62]])


def test_frames_to_notes_ignores_scoops_and_brief_excursions():
    n_p = 61
    logits = np.full((60, n_p + 2), -10.0)
    logits[:, n_p] = 10.0
    logits[:, -1] = -10.0
    logits[5:55, n_p] = -10.0
    logits[5:55, 28] = 10.0  # one sung note, MIDI 64, 1 s long ...
    logits[5:7, 28], logits[5:7, 26] = -10.0, 10.0  # ... scooped up from 62 for 40 ms
    logits[30:36, 28], logits[30:36, 29] = -10.0, 10.0  # ... and 120 ms of it a semitone sharp
    notes = frames_to_notes(logits, 0.02, 36)
    np.testing.assert_allclose(notes, [[0.1, 1.1, 64]])
    # a 200 ms excursion is a note of its own only when stable_frames asks for less
    logits[30:36, 29] = -10.0
    logits[30:40, 28], logits[30:40, 29] = -10.0, 10.0
    np.testing.assert_allclose(frames_to_notes(logits, 0.02, 36), [[0.1, 1.1, 64]])
    np.testing.assert_allclose(
        frames_to_notes(logits, 0.02, 36, stable_frames=8),
        [[0.1, 0.6, 64], [0.6, 0.8, 65], [0.8, 1.1, 64]],
    )
    # a change that holds to the end of the note (a legato step) does start a note
    logits[30:55, 28], logits[30:55, 29] = -10.0, 10.0
    np.testing.assert_allclose(frames_to_notes(logits, 0.02, 36), [[0.1, 0.6, 64], [0.6, 1.1, 65]])


def _one_note_logits(frames: int = 60, pitch: int = 28, a: int = 5, b: int = 55) -> np.ndarray:
    """Frame logits of one note (class ``pitch``) over frames ``a:b``, silence around it."""
    logits = np.full((frames, 63), -10.0)
    logits[:, 61] = 10.0
    logits[a:b, 61] = -10.0
    logits[a:b, pitch] = 10.0
    return logits


def test_frames_to_notes_release_gaps_and_attack():
    # a fall-off a whole tone down over the last 80 ms stays with the note (not cut off)
    logits = _one_note_logits()
    logits[51:55, 28], logits[51:55, 26] = -10.0, 10.0
    np.testing.assert_allclose(frames_to_notes(logits, 0.02, 36), [[0.1, 1.1, 64]])
    # a one-frame voicing dropout cuts the note unless max_gap fills it
    logits = _one_note_logits()
    logits[30, 28], logits[30, 61] = -10.0, 10.0
    assert len(frames_to_notes(logits, 0.02, 36, max_gap=0)) == 2
    np.testing.assert_allclose(frames_to_notes(logits, 0.02, 36, max_gap=1), [[0.1, 1.1, 64]])
    # the pitch of a short note comes from its body, not its attack
    logits = _one_note_logits(b=13)  # 160 ms
    logits[5:9, 28], logits[5:9, 27] = -10.0, 10.0  # 80 ms scooped a semitone low
    np.testing.assert_allclose(frames_to_notes(logits, 0.02, 36, skip_frames=4), [[0.1, 0.26, 64]])
    np.testing.assert_allclose(frames_to_notes(logits, 0.02, 36, skip_frames=0), [[0.1, 0.26, 63]])


def test_frame_decoder_hook_sees_the_whole_streams_logits():
    torch.manual_seed(0)
    model = Transcriber(**TINY).eval()
    audio = np.random.default_rng(0).standard_normal(int(model.sample_rate * 5.0)) * 0.1
    seen = []

    def decoder(logits):
        seen.append(logits.shape)
        return np.array([[0.5, 9.0, 60.0], [6.0, 7.0, 62.0]])

    notes = transcribe_array(model, audio, "frames", frame_decoder=decoder)
    windows = int(np.ceil(5.0 / model.window))
    assert seen == [(windows * model.frames, model.vocab.n_pitches + 2)]
    np.testing.assert_allclose(notes, [[0.5, 5.0, 60.0]])  # clipped to the 5 s input


def test_speed_perturbed_windows_keep_audio_and_targets_aligned():
    sr, vocab = 16000, T.Vocabulary(window=2.0)
    t = np.arange(sr * 3) / sr
    notes = np.array([[0.25, 1.0, 60.0], [1.0, 2.0, 64.0], [2.0, 3.0, 67.0]])
    midi = np.select([t < 1.0, t < 2.0], [60.0, 64.0], 67.0)
    tone = np.sin(2 * np.pi * np.cumsum(440 * 2 ** ((midi - 69) / 12)) / sr) * (t >= 0.25)
    rec = Recording("tone", tone.astype(np.float32), notes)
    ds = NoteWindows([[rec]], vocab, sr, 50, 0.04, mode="train", length=6, seed=1,
                     gain_db=(0.0, 0.0), noise_probability=0.0, shift_probability=1.0,
                     shift_semitones=2.0)  # fmt: skip
    shifts = set()
    for i in range(6):
        item = ds[i]
        audio, pitch = item["audio"].numpy(), item["pitch"].numpy()
        f0 = librosa.yin(audio, fmin=150, fmax=700, sr=sr, frame_length=1280, hop_length=320)
        sung = librosa.hz_to_midi(f0[1:100:2])  # at the 40 ms target frames' centres
        inner = [
            j
            for j in range(2, 48)  # sounding frames away from note changes
            if pitch[j] < vocab.n_pitches and len(set(pitch[j - 2 : j + 3])) == 1
        ]
        assert len(inner) > 5
        target = pitch[inner] + vocab.min_pitch
        assert np.abs(sung[inner] - target).max() <= 0.55  # the target is the rounded sung pitch
        shifts.add(round(float(np.median(sung[inner] - np.rint(sung[inner]))), 2))
    assert len(shifts) > 1  # fractional shifts: not all windows on the semitone grid


def test_windows_dataset_targets_match_the_notes():
    vocab = T.Vocabulary(window=2.0)
    notes = np.array([[0.5, 1.0, 60.2], [1.5, 2.5, 64]])
    noise = np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32)
    rec = Recording("x", noise, notes)
    ds = NoteWindows([[rec]], vocab, 16000, 50, 0.04, mode="eval")
    assert len(ds) == 2
    item = ds[1]
    assert [vocab.describe(t) for t in item["tokens"].tolist()] == [
        "on 64", "TIE_END", "time 0.50", "off 64", "EOS"]  # fmt: skip
    pitch, onset = frame_targets(notes, 0.0, 50, 0.04, vocab)
    assert pitch[12:25].tolist() == [24] * 13 and pitch[11] == vocab.n_pitches
    assert onset.nonzero()[0].tolist() == [12, 37]
    train = NoteWindows([[rec]], vocab, 16000, 50, 0.04, mode="train", length=4, seed=3)
    a, b = train[(2, 0)], train[(2, 0)]
    assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["tokens"], b["tokens"])
    assert not torch.equal(train[(2, 1)]["audio"], a["audio"])  # a new window next epoch
    batch = collate([ds[0], ds[1]], max_tokens=64)
    assert batch["tokens_in"][:, 0].tolist() == [T.BOS, T.BOS]
    assert torch.equal(batch["tokens_in"][:, 1:], batch["tokens_out"][:, :-1])


def test_streamed_file_equals_in_memory_transcription(tmp_path):
    torch.manual_seed(0)
    model = Transcriber(**TINY).eval()
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(16000 * 5)).astype(np.float32)
    sf.write(tmp_path / "x.wav", x, 16000, subtype="FLOAT")
    a = transcribe_array(model, x)
    b, duration = transcribe_file(model, tmp_path / "x.wav")
    assert duration == pytest.approx(5.0)
    np.testing.assert_allclose(a, b)
    blocks = iter(np.array_split(x / np.abs(x).max(), 7))  # any block sizes
    c = transcribe_blocks(model, blocks, 5.0, method="seq2seq", batch_windows=2)
    np.testing.assert_allclose(a, c, atol=1e-6)


def test_training_lowers_the_loss_on_a_fixed_batch():
    from music.transcription.train import TranscriptionSystem

    torch.manual_seed(0)
    system = TranscriptionSystem(dict(TINY), {"lr": 3e-3, "schedule": "none"})
    model = system.model
    sr = 16000
    t = np.arange(model.samples) / sr
    notes = np.array([[0.2, 0.9, 57], [1.0, 1.7, 64]])
    x = np.zeros_like(t)
    for on, off, p in notes:
        f = 440 * 2 ** ((p - 69) / 12)
        x += np.where((t >= on) & (t < off), np.sin(2 * np.pi * f * t), 0.0)
    rec = Recording("tone", x.astype(np.float32), notes)
    ds = NoteWindows([[rec]], model.vocab, sr, model.frames, model.frame_seconds, mode="eval")
    batch = collate([ds[0]] * 4, model.max_tokens)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss = system._losses(batch)["loss"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def _peaky_model(seed: int, scale: float = 5.0, **kw) -> Transcriber:
    """A random model whose next-token distributions are sharp enough for paths to differ."""
    torch.manual_seed(seed)
    model = Transcriber(**kw).eval()
    model.out.weight.data *= scale
    return model


def _memories(model: Transcriber, n: int) -> torch.Tensor:
    """``n`` clearly different encoder outputs ``(n, frames, d_model)``."""
    return torch.randn(n, model.frames, model.embed.embedding_dim) * 3.0


def test_beam_search_with_beam_one_is_greedy_and_windows_do_not_mix():
    model = _peaky_model(0, **TINY)
    with torch.no_grad():
        memory = _memories(model, 4)
        greedy = model.generate(memory, max_len=12)
        assert len({tuple(g) for g in greedy}) > 1  # the windows differ
        assert model.beam_search(memory, beam=1, max_len=12) == greedy
        batched = model.beam_search(memory, beam=3, max_len=12)
        assert batched == [model.beam_search(memory[w : w + 1], beam=3, max_len=12)[0]
                           for w in range(4)]  # fmt: skip
        model.out.bias.data[T.EOS] += 1e4
        assert model.beam_search(memory, beam=3, max_len=12) == [[T.EOS]] * 4
    with pytest.raises(ValueError, match="beam"):
        model.beam_search(memory, beam=0)


@torch.no_grad()
def test_beam_search_is_exhaustive_when_the_beam_holds_every_prefix():
    # a 14-token vocabulary; with max_len 3 and a beam of V ** 3 nothing is ever pruned, so
    # the result must be the best finished sequence of a brute-force search (teacher forcing,
    # no cache) under the GNMT length penalty, the length counting EOS
    model = _peaky_model(3, window=0.05, n_fft=512, min_pitch=60, max_pitch=61, d_model=32,
                         ff=64, n_heads=2, encoder_layers=1, decoder_layers=2,
                         conv_channels=(4, 4, 4), max_tokens=8)  # fmt: skip
    v = model.vocab.size
    pairs = torch.tensor(list(itertools.product(range(v), repeat=2)))
    answers, memory = {}, _memories(model, 8)
    for alpha in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0):
        got = answers[alpha] = model.beam_search(memory, beam=v**3, max_len=3, length_penalty=alpha)
        for b in range(len(memory)):
            kv = [
                tuple(t[b : b + 1].expand(len(pairs), -1, -1, -1) for t in layer.memory_kv(memory))
                for layer in model.decoder
            ]
            inp = torch.cat([torch.full((len(pairs), 1), T.BOS), pairs], 1)
            logp = model._decode(inp, kv, None, 0).log_softmax(-1)
            logp[..., [T.PAD, T.BOS]] = -torch.inf

            def ranked(score: torch.Tensor, n: int, alpha: float = alpha) -> float:
                return float(score) / ((5 + n) / 6) ** alpha

            best = {(T.EOS,): ranked(logp[0, 0, T.EOS], 1)}
            for (a, c), row in zip(pairs.tolist(), logp, strict=True):
                if a in (T.EOS, T.PAD, T.BOS) or c in (T.PAD, T.BOS):
                    continue
                best[(a, T.EOS)] = ranked(row[0, a] + row[1, T.EOS], 2)
                if c != T.EOS:
                    best[(a, c, T.EOS)] = ranked(row[0, a] + row[1, c] + row[2, T.EOS], 3)
            assert tuple(got[b]) == max(best, key=best.get)
    assert answers[0.0] != answers[3.0]  # the penalty changes some answer


def test_cached_beam_search_matches_a_beam_search_without_cache():
    # flat distributions (the beams overtake each other, so the cache rows must follow
    # them) and a likely EOS (beams finish mid-search while others go on)
    model = _peaky_model(1, scale=1.0, **TINY)
    model.out.bias.data[T.EOS] += 1.0
    k, max_len, alpha = 4, 10, 1.0
    with torch.no_grad():
        memory = _memories(model, 4)
        got = model.beam_search(memory, beam=k, max_len=max_len, length_penalty=alpha)
        mem_kv = [layer.memory_kv(memory) for layer in model.decoder]
        lengths = set()
        for b in range(4):
            kv = [(kk[b : b + 1], vv[b : b + 1]) for kk, vv in mem_kv]
            live, pool = [([], 0.0)], []  # re-decoded from BOS at every step
            for i in range(max_len):
                cands = []
                for toks, s in live:
                    logp = model._decode(torch.tensor([[T.BOS, *toks]]), kv, None, 0)[0, -1]
                    logp = logp.log_softmax(-1)
                    logp[[T.PAD, T.BOS]] = -torch.inf
                    cands += [(toks + [t], s + float(logp[t])) for t in range(len(logp))]
                kth = sorted((c[1] for c in cands), reverse=True)[k - 1]
                for toks, s in cands:
                    if toks[-1] == T.EOS and s >= kth and len(pool) < k:
                        pool.append((s / ((5 + i + 1) / 6) ** alpha, toks))
                live = sorted((c for c in cands if c[0][-1] != T.EOS), key=lambda c: -c[1])[:k]
                if len(pool) >= k:
                    break
            want = max(pool, key=lambda c: c[0])[1] if pool else live[0][0]
            assert got[b] == want
            lengths.add(len(want))
    assert len(lengths) > 1 and min(lengths) < max_len  # finished at different steps


def test_train_config_refuses_conp_selection_with_weight_ema():
    """``select: conp`` scores the raw weights after the EMA callback swapped them back, so
    it cannot choose a ``best.ckpt`` that holds the average."""
    from music.transcription.train import TranscriptionTrainConfig
    from wb.errors import ConfigError

    assert TranscriptionTrainConfig.from_dict({"select": "loss", "ema_decay": 0.99}).ema_decay
    assert TranscriptionTrainConfig.from_dict({"select": "conp"}).select == "conp"
    with pytest.raises(ConfigError, match="does not work with train.ema_decay"):
        TranscriptionTrainConfig.from_dict({"select": "conp", "ema_decay": 0.99})
    with pytest.raises(ConfigError, match="choose one of"):
        TranscriptionTrainConfig.from_dict({"select": "accuracy"})
