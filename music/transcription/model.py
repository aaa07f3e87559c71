"""The voice-to-MIDI encoder-decoder (:class:`Transcriber`).

* **Front end**: STFT magnitude (``n_fft`` samples, hop ``hop_length``) mapped onto a
  log-frequency axis with ``bins_per_semitone`` triangular filters per semitone between
  ``fmin`` and ``fmax`` (a constant-Q-like spectrogram computed from one STFT, as
  Onsets and Frames uses a log-mel one; Hawthorne et al. 2018), then ``log(1 + 100 x)``.
* **Encoder**: a 2-D convolutional stack over (time, frequency) that halves the frame rate
  and folds frequency into channels, then a pre-norm Transformer encoder (Vaswani et al.
  2017) with learned positions.
* **Decoder**: an autoregressive pre-norm Transformer decoder over the MT3-style event
  tokens of :mod:`music.transcription.tokens` (Gardner et al. 2022), trained with teacher
  forcing; greedy decoding (:meth:`Transcriber.generate`) or beam search
  (:meth:`Transcriber.beam_search`), both with a key/value cache.
* **Frame head** on the same encoder (the baseline the issue asks for): per encoder frame,
  a pitch class (``n_pitches`` pitches + "no note") and an onset probability.

Shapes: audio ``(batch, samples)`` at ``sample_rate``; encoder output ``(batch, frames,
d_model)`` with ``frames = (samples // hop_length + 1) // 2`` (the centred STFT has
``samples // hop_length + 1`` frames; the front end max-pools time by 2), one per
``2 * hop_length / sample_rate`` seconds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from classify.frontends import log_frequency_filterbank
from music.transcription.tokens import BOS, EOS, PAD, Vocabulary


def sinusoidal_time(seconds: torch.Tensor, d_model: int) -> torch.Tensor:
    """Sinusoidal encoding of absolute times (Vaswani et al. 2017, with time in seconds in
    place of the position): ``(..., d_model)`` for ``seconds`` of any shape; wavelengths from
    20 ms to about 20 s, so 10 ms apart and 4 s apart are both told apart.

    Raises:
        ValueError: an odd ``d_model``.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even for the time encoding, got {d_model}")
    k = torch.arange(d_model // 2, dtype=torch.float32, device=seconds.device)
    freq = (1 / 0.02) * (0.02 / 20.0) ** (k / max(d_model // 2 - 1, 1))  # rad/s / 2 pi
    angle = 2 * math.pi * seconds.float()[..., None] * freq
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


class DecoderLayer(nn.Module):
    """Pre-norm Transformer decoder layer with an incremental key/value cache."""

    def __init__(self, d_model: int, n_heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.h = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.self_out = nn.Linear(d_model, d_model)
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.cross_out = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d_model)
        )
        self.n1, self.n2, self.n3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.h, d // self.h).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, e = x.shape
        return x.transpose(1, 2).reshape(b, n, h * e)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention keys and values ``(batch, heads, frames, d_model / heads)`` each,
        of the encoder output ``(batch, frames, d_model)`` (computed once per window)."""
        k, v = self.kv(memory).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(
        self,
        x: torch.Tensor,
        mem_kv: tuple[torch.Tensor, torch.Tensor],
        cache: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``x``: ``(batch, tokens, d_model)`` -> the same shape. With ``cache`` (a dict,
        updated in place), ``x`` holds only the new position and earlier keys/values come from
        the cache.

        Raises:
            ValueError: more than one new position with a non-empty cache (the causal mask
                would be misaligned).
        """
        if cache and x.shape[1] > 1:
            raise ValueError("a decoder cache takes one new position at a time")
        p = self.p if self.training else 0.0
        q, k, v = (self._heads(t) for t in self.qkv(self.n1(x)).chunk(3, dim=-1))
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        causal = cache is None or q.shape[2] > 1
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=causal)
        x = x + self.drop(self.self_out(self._merge(a)))
        a = F.scaled_dot_product_attention(self._heads(self.q(self.n2(x))), *mem_kv, dropout_p=p)
        x = x + self.drop(self.cross_out(self._merge(a)))
        return x + self.drop(self.ff(self.n3(x)))


class Transcriber(nn.Module):
    """Encoder-decoder voice-to-MIDI transcriber with a frame-level head.

    Args:
        sample_rate: input rate in Hz.
        window: seconds per window (the decoder describes one window).
        n_fft: STFT size in samples; hop_length: STFT hop in samples (10 ms at 16 kHz).
        fmin, fmax: log-frequency axis limits in Hz; bins_per_semitone: its resolution.
        conv_channels: channels of the convolutional front end's three blocks.
        d_model, n_heads, ff: Transformer width, heads, feed-forward width.
        encoder_layers, decoder_layers: depths.
        dropout: dropout in both Transformers.
        min_pitch, max_pitch: MIDI pitch range of the vocabulary and the frame head.
        step: time resolution of the tokens in seconds.
        max_tokens: longest token sequence per window (positions of the decoder).
        time_encoding: add the same sinusoidal encoding of absolute time (seconds into the
            window, :func:`sinusoidal_time`) to each encoder frame (its centre) and to each
            ``time`` token's embedding, so that a time token's query can find its frames by
            content from the start of training (cross-attention otherwise has to learn that
            alignment from scratch, which is slow on a CPU budget).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        window: float = 4.0,
        n_fft: int = 2048,
        hop_length: int = 160,
        fmin: float = 50.0,
        fmax: float = 5000.0,
        bins_per_semitone: int = 2,
        conv_channels: tuple[int, int, int] = (16, 32, 32),
        d_model: int = 192,
        n_heads: int = 4,
        ff: int = 768,
        encoder_layers: int = 4,
        decoder_layers: int = 3,
        dropout: float = 0.1,
        min_pitch: int = 36,
        max_pitch: int = 96,
        step: float = 0.01,
        max_tokens: int = 256,
        time_encoding: bool = False,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        self.sample_rate, self.window = int(sample_rate), float(window)
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.vocab = Vocabulary(window=window, step=step, min_pitch=min_pitch, max_pitch=max_pitch)
        self.max_tokens = int(max_tokens)
        fb = log_frequency_filterbank(sample_rate, n_fft, fmin, fmax, 12 * bins_per_semitone)
        self.register_buffer("filterbank", fb, persistent=False)
        self.register_buffer("stft_window", torch.hann_window(n_fft), persistent=False)
        c1, c2, c3 = conv_channels

        def block(cin: int, cout: int, pool: tuple[int, int]) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.MaxPool2d(pool),
            )

        self.conv = nn.Sequential(
            block(1, c1, (1, 2)), block(c1, c2, (2, 2)), block(c2, c3, (1, 2))
        )
        n_freq = fb.shape[1] // 2 // 2 // 2
        self.project = nn.Linear(c3 * n_freq, d_model)
        self.frames = (self.samples // hop_length + 1) // 2
        self.enc_pos = nn.Parameter(torch.zeros(1, self.frames + 1, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, encoder_layers, enable_nested_tensor=False)
        self.enc_norm = nn.LayerNorm(d_model)
        self.frame_head = nn.Linear(d_model, self.vocab.n_pitches + 2)  # pitches, none, onset
        self.embed = nn.Embedding(self.vocab.size, d_model)
        self.dec_pos = nn.Parameter(torch.zeros(1, self.max_tokens + 1, d_model))
        self.decoder = nn.ModuleList(
            DecoderLayer(d_model, n_heads, ff, dropout) for _ in range(decoder_layers)
        )
        self.dec_norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, self.vocab.size)
        nn.init.normal_(self.enc_pos, std=0.02)
        nn.init.normal_(self.dec_pos, std=0.02)
        self.use_time_encoding = bool(time_encoding)
        if self.use_time_encoding:  # fixed tables (not in the state dict: weights stay portable)
            centres = (torch.arange(self.frames) + 0.25) * self.frame_seconds
            self.register_buffer("frame_time", sinusoidal_time(centres, d_model), persistent=False)
            token_time = torch.zeros(self.vocab.size)
            token_time[self.vocab.time0 : self.vocab.on0] = (
                torch.arange(self.vocab.n_times) * self.vocab.step
            )
            table = sinusoidal_time(token_time, d_model)
            is_time = torch.zeros(self.vocab.size, 1)
            is_time[self.vocab.time0 : self.vocab.on0] = 1.0
            self.register_buffer("token_time", table * is_time, persistent=False)

    @property
    def samples(self) -> int:
        """Samples per window."""
        return int(round(self.window * self.sample_rate))

    @property
    def frame_seconds(self) -> float:
        """Seconds per encoder frame."""
        return 2 * self.hop_length / self.sample_rate

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-frequency magnitude ``(batch, frames, bins)`` of ``audio`` ``(batch, samples)``."""
        spec = torch.stft(
            audio.float(), self.n_fft, self.hop_length, window=self.stft_window,
            center=True, return_complex=True,
        ).abs()  # fmt: skip
        return torch.log1p(100.0 * (spec.transpose(1, 2) @ self.filterbank))

    def encode(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode windows.

        Args:
            audio: ``(batch, samples)`` with ``samples`` = :attr:`samples`.

        Returns:
            ``(memory, frame_logits)``: ``(batch, frames, d_model)`` and
            ``(batch, frames, n_pitches + 2)`` (pitch classes, "no note", onset logit).
        """
        x = self.conv(self.features(audio)[:, None])  # (b, c, frames, f)
        b, c, t, f = x.shape
        x = self.project(x.permute(0, 2, 1, 3).reshape(b, t, c * f))
        x = x + self.enc_pos[:, : x.shape[1]]
        if self.use_time_encoding:
            x = x + self.frame_time[: x.shape[1]]
        memory = self.enc_norm(self.encoder(x))
        return memory, self.frame_head(memory)

    def _decode(self, tokens: torch.Tensor, mem_kv: list, caches: list | None, offset: int):
        if offset + tokens.shape[1] > self.max_tokens + 1:
            raise ValueError(f"token sequences longer than max_tokens ({self.max_tokens})")
        x = self.embed(tokens) + self.dec_pos[:, offset : offset + tokens.shape[1]]
        if self.use_time_encoding:
            x = x + self.token_time[tokens]
        for i, layer in enumerate(self.decoder):
            x = layer(x, mem_kv[i], None if caches is None else caches[i])
        return self.out(self.dec_norm(x))

    def forward(self, audio: torch.Tensor, tokens_in: torch.Tensor):
        """Teacher-forced forward pass.

        Args:
            audio: ``(batch, samples)``.
            tokens_in: ``(batch, length)`` decoder input (``BOS`` then the target shifted).

        Returns:
            ``(token_logits, frame_logits)``: ``(batch, length, vocab)`` and
            ``(batch, frames, n_pitches + 2)``.
        """
        memory, frames = self.encode(audio)
        mem_kv = [layer.memory_kv(memory) for layer in self.decoder]
        return self._decode(tokens_in, mem_kv, None, 0), frames

    @torch.no_grad()
    def generate(self, memory: torch.Tensor, max_len: int | None = None) -> list[list[int]]:
        """Greedy decoding of each window's token sequence.

        Args:
            memory: ``(batch, frames, d_model)`` from :meth:`encode`.
            max_len: most tokens per window (default :attr:`max_tokens`).

        Returns:
            One token list per window (without ``BOS``; ends with ``EOS`` unless cut at
            ``max_len``).
        """
        max_len = min(int(max_len or self.max_tokens), self.max_tokens)
        b = memory.shape[0]
        mem_kv = [layer.memory_kv(memory) for layer in self.decoder]
        caches: list[dict] = [{} for _ in self.decoder]
        tok = torch.full((b, 1), BOS, dtype=torch.long, device=memory.device)
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        out = []
        for i in range(max_len):
            logits = self._decode(tok, mem_kv, caches, i)[:, -1]
            logits[:, PAD] = -torch.inf
            logits[:, BOS] = -torch.inf
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            out.append(nxt)
            done |= nxt == EOS
            if bool(done.all()):
                break
            tok = nxt[:, None]
        seqs = torch.stack(out, 1).tolist() if out else [[] for _ in range(b)]
        return [[t for t in s if t != PAD] for s in seqs]

    @torch.no_grad()
    def beam_search(
        self,
        memory: torch.Tensor,
        beam: int = 4,
        max_len: int | None = None,
        length_penalty: float = 0.0,
    ) -> list[list[int]]:
        """Beam-search decoding of each window's token sequence.

        Per window, ``beam`` live prefixes are kept, ranked by their summed token
        log-probabilities. At each step every live prefix is extended by every token; the
        ``beam`` best extensions that are not ``EOS`` become the live prefixes, and an ``EOS``
        extension that ranks among the ``beam`` best of all extensions joins the window's
        *finished* pool, scored by its sum divided by the GNMT length penalty
        ``((5 + length) / 6) ** length_penalty`` (Wu et al. 2016; ``length`` counts the
        tokens including ``EOS``; ``0`` ranks by the plain sum). A window stops once its pool
        holds ``beam`` sequences; the search stops when every window has stopped or at
        ``max_len``. The result is the pool's best sequence, or, for a window that finished
        none, its best live prefix. This is the usual finished-pool design (as in fairseq);
        ``beam=1`` gives :meth:`generate`'s greedy sequence.

        Args:
            memory: ``(batch, frames, d_model)`` from :meth:`encode`.
            beam: live prefixes per window (>= 1).
            max_len: most tokens per window (default :attr:`max_tokens`).
            length_penalty: the GNMT exponent (>= 0; larger favours longer sequences).

        Returns:
            One token list per window, as :meth:`generate` (ends with ``EOS`` unless none
            finished within ``max_len``).

        Raises:
            ValueError: ``beam < 1`` or a negative ``length_penalty``.
        """
        if beam < 1 or length_penalty < 0:
            raise ValueError(
                f"need beam >= 1 and length_penalty >= 0, got {beam}, {length_penalty}"
            )
        max_len = min(int(max_len or self.max_tokens), self.max_tokens)
        b, dev, k = memory.shape[0], memory.device, int(beam)
        mem_kv = [
            tuple(t.repeat_interleave(k, dim=0) for t in layer.memory_kv(memory))
            for layer in self.decoder
        ]
        caches: list[dict] = [{} for _ in self.decoder]
        score = torch.full((b, k), -torch.inf, device=dev)
        score[:, 0] = 0.0  # the k copies of BOS are one prefix
        seqs = torch.zeros(b, k, 0, dtype=torch.long, device=dev)
        tok = torch.full((b * k, 1), BOS, dtype=torch.long, device=dev)
        rows = torch.arange(b, device=dev)[:, None] * k
        pool: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
        for i in range(max_len):
            logp = self._decode(tok, mem_kv, caches, i)[:, -1].float().log_softmax(-1)
            logp[:, PAD] = -torch.inf
            logp[:, BOS] = -torch.inf
            cand = score[..., None] + logp.view(b, k, -1)  # (b, k, vocab)
            kth = cand.view(b, -1).topk(k, dim=-1).values[:, -1]
            eos = cand[..., EOS]
            penalty = ((5 + i + 1) / 6) ** length_penalty
            for w, j in ((eos >= kth[:, None]) & eos.isfinite()).nonzero().tolist():
                if len(pool[w]) < k:
                    pool[w].append((float(eos[w, j]) / penalty, [*seqs[w, j].tolist(), EOS]))
            cand[..., EOS] = -torch.inf
            score, flat = cand.view(b, -1).topk(k, dim=-1)
            parent, nxt = flat // cand.shape[-1], flat % cand.shape[-1]
            seqs = torch.cat([seqs.gather(1, parent[..., None].expand_as(seqs)), nxt[..., None]], 2)
            index = (rows + parent).reshape(-1)
            for cache in caches:
                cache["k"], cache["v"] = cache["k"][index], cache["v"][index]
            if all(len(p) >= k for p in pool):
                break
            tok = nxt.reshape(-1, 1)
        return [
            max(pool[w], key=lambda c: c[0])[1] if pool[w] else seqs[w, 0].tolist()
            for w in range(b)
        ]
