"""The one registry of names users type: datasets, classifier heads, separation models.

Torch-free and import-free, so command-line parsing and help never load a model library. The
libraries map each name to code (``classify.datasets.DATASETS``, ``classify.models.HEADS``,
``separation.models.REGISTRY``); a test checks that they list exactly these names.
"""

from __future__ import annotations

from wb.errors import WbError

#: Classification datasets (``wb classify --dataset``).
DATASETS = ("esc50", "urbansound8k", "audiomnist", "fsdd", "coral", "gtzan", "fma_small", "folder")
#: Other spellings accepted for :data:`DATASETS` (case-insensitive).
DATASET_ALIASES = {
    "fma": "fma_small",
    "us8k": "urbansound8k",
    "esc-50": "esc50",
    "audio-mnist": "audiomnist",
}
#: Classifier heads (``model.name`` of ``wb classify``).
CLASSIFIER_HEADS = ("piczak", "cnn", "transformer", "mamba", "shortchunk", "crnn")
#: Trainable separation models (``model.name`` of the separation recipes).
SEPARATION_MODELS = ("convtasnet", "hdemucs", "htdemucs")


def dataset(name: str) -> str:
    """The canonical dataset name for ``name`` or one of its aliases (case-insensitive).

    Raises:
        WbError: an unknown name (the message lists the known ones).
    """
    key = str(name).lower()
    key = DATASET_ALIASES.get(key, key)
    if key not in DATASETS:
        raise WbError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    return key
