"""Offline four-part (SATB) chorale data set rendered from the music21 Bach corpus.

Every four-voice work of ``music21.corpus.getComposer('bach')`` (see
:mod:`music.chorale_corpus` for which works qualify and how voices are assigned) is rendered
part by part with FluidSynth (:mod:`music.synth`) into a MUSDB-like tree::

    <root>/<split>/<piece>__r<k>/{mixture,soprano,alto,tenor,bass}.wav   mono, sample_rate Hz
                                 {soprano,alto,tenor,bass}.mid             notes as rendered
                                 meta.json                                 settings + checksums
    <root>/manifest.json                                                   pieces, splits, skips

The mixture is the exact sample-wise sum of the four stems as written (PCM_16 stems are
quantised first and the mixture is the integer sum; FLOAT stems are summed in float32), all
five scaled by one factor so the largest of them peaks at ``peak`` (no clipping).

Augmentation follows Gover & Depalle, "Score-informed source separation of choral music"
(ISMIR 2020; github.com/matangover/synthesize-chorales): a random tempo, breaths (short rests
at phrase ends, i.e. before every fermata but the last; every 8 beats when a work has no
fermata, as in their code) and dropped notes (a fraction of each part's notes turned into
rests, never the last two). On top of that: a random General MIDI program per part from a
timbre set, a transposition of up to +-``transpose`` semitones chosen among those that keep
every voice inside its range, a per-part gain of up to +-``gain_db`` dB, humanised onsets and
velocities, and FluidSynth reverb on or off. Every random choice of rendition ``k`` of a work
comes from :func:`piece_seed` (global seed, work name, ``k``), so results do not depend on
which process renders what or in which order.

Modules: :mod:`~music.chorales.config` (settings), :mod:`~music.chorales.plan` (the random
choices of a rendition), :mod:`~music.chorales.render` (one rendition to files) and
:mod:`~music.chorales.prepare` (the whole data set); their public names are re-exported here.

Splits (:func:`music.chorale_corpus.assign_splits`): test is the held-out list
(``heldout``, default ``../shared/heldout_chorales.txt``) plus every work with the same
soprano tune; valid is a fixed ~5 % of the rest chosen by a hash of the work name; train is
everything else.
"""

from __future__ import annotations

from music.chorale_corpus import (
    VOICES,
    assign_splits,
    interval_sequence,
    read_heldout,
    same_tune,
    tune_similarity,
)
from music.chorales.config import (
    DEFAULT_VOICE_RANGES,
    GENERATOR_VERSION,
    MIN_NOTE_SECONDS,
    SAMPLE_RATE_RANGE,
    SPLITS,
    STEMS,
    SUBTYPES,
    TIMBRES,
    ChoraleConfig,
    piece_id,
    piece_seed,
)
from music.chorales.plan import (
    RenditionPlan,
    breath_windows,
    choose_transposition,
    plan_rendition,
)
from music.chorales.prepare import (
    PrepareSummary,
    check_prepare,
    check_prepare_kwargs,
    default_kwargs,
    prepare_chorales,
    resolve_heldout,
    write_manifest,
)
from music.chorales.render import expected_files, render_rendition, verify_piece

__all__ = [
    "DEFAULT_VOICE_RANGES", "GENERATOR_VERSION", "MIN_NOTE_SECONDS", "SAMPLE_RATE_RANGE",
    "SPLITS", "STEMS",
    "SUBTYPES", "TIMBRES", "VOICES", "ChoraleConfig", "PrepareSummary", "RenditionPlan",
    "assign_splits", "breath_windows", "check_prepare", "check_prepare_kwargs",
    "choose_transposition", "default_kwargs", "expected_files", "interval_sequence", "piece_id",
    "piece_seed",
    "plan_rendition", "prepare_chorales", "read_heldout", "render_rendition", "resolve_heldout",
    "same_tune", "tune_similarity", "verify_piece", "write_manifest",
]  # fmt: skip
