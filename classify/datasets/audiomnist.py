"""AudioMNIST: 30,000 spoken digits by 60 speakers (Becker et al., 2018).

Reference: S. Becker, M. Ackermann, S. Lapuschkin, K.-R. Mueller, W. Samek, "Interpreting and
Explaining Deep Neural Networks for Classification of Audio Signals", arXiv:1807.03418.
https://github.com/soerenab/AudioMNIST (MIT licence).

Layout (the GitHub repository)::

    data/<speaker>/<digit>_<speaker>_<take>.wav    speakers "01".."60", takes 0..49, 48 kHz
    data/audioMNIST_meta.txt                       JSON: speaker -> {"gender": ..., "age": ...}

Tasks and protocols (option ``task``):
    ``digit`` (default) -> protocol ``digit``: the paper's 5 speaker-disjoint splits; in each,
        12 test speakers, 12 validation speakers (:attr:`Split.validate`) and 36 training
        speakers. Classes "0".."9", all 60 speakers.
    ``gender`` -> protocol ``gender``: the paper's 4 splits over a gender-balanced subset of
        24 speakers (12 train, 6 validate, 6 test); classes "male", "female" read from
        ``audioMNIST_meta.txt``; only those 24 speakers' clips are in the dataset.

The speaker sets come from a JSON file (option ``splits_file``; the format of
``audiomnist_splits.json``: ``{"digit": {"test": [[...]]*5, "validate": [[...]]*5},
"gender": {"train": [[...]]*4, "validate": [...], "test": [...]}}`` with integer speaker ids).
Without the option the file is looked up in ``$WB_AUDIOMNIST_SPLITS``, in the dataset folder,
and in ``shared/data/`` next to the working directory or the project checkout; failing that,
the splits are read from ``audiomnist/train/splits.py`` inside the downloaded repository
(parsed as data, never executed). 8 kHz and 1.0 s follow the paper's AudioNet preprocessing.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from classify.datasets.base import (
    Archive,
    Clip,
    ClipDataset,
    DatasetNotFound,
    Split,
    env_path,
    find_root,
)
from wb.errors import ConfigError, WbError

CITATION = (
    "S. Becker, M. Ackermann, S. Lapuschkin, K.-R. Mueller, W. Samek, Interpreting and "
    "Explaining Deep Neural Networks for Classification of Audio Signals, arXiv:1807.03418, 2018"
)
# Archive of the commit that the published splits come from. GitHub does not guarantee
# byte-stable archives, so no SHA-256 is pinned; --download stops after the
# transfer and prints its SHA-256; check it against the publisher and pass it with --sha256.
ARCHIVE = Archive(
    url=(
        "https://github.com/soerenab/AudioMNIST/archive/"
        "6a49d8b77c88430445b018a0936fb0d55903e246.zip"
    ),
    filename="AudioMNIST-6a49d8b7.zip",
    note="GitHub commit archive (about 1 GB); no stable checksum is published",
)
SPLITS_NAME = "audiomnist_splits.json"
NAME_RE = re.compile(r"^(\d)_(\d+)_(\d+)$")
GENDERS = ("male", "female")
TASKS = ("digit", "gender")


def load(root: Path, *, task: str = "digit", splits_file: str | Path | None = None) -> ClipDataset:
    """Read AudioMNIST from ``root/data/``.

    Args:
        root: the repository folder holding ``data/`` (or the folder it was unzipped in).
        task: ``"digit"`` (10 classes) or ``"gender"`` (male/female, 24-speaker subset).
        splits_file: JSON file with the paper's speaker splits (see the module docstring).

    Returns:
        :class:`ClipDataset` named ``audiomnist`` (or ``audiomnist-gender``); group = speaker
        id (``"01"``..``"60"``), fold = the number of the split whose test set holds the
        speaker; 8 kHz, 1.0 s.

    Raises:
        ConfigError: unknown task.
        DatasetNotFound: missing ``data/``, speakers the splits need, or the metadata file
            (gender task).
        WbError: no splits file found, or one with an unexpected structure.
    """
    if task not in TASKS:
        raise ConfigError(f"audiomnist: unknown task {task!r} (choose from {', '.join(TASKS)})")
    found = find_root(root, ("data",))
    if found is None:
        raise DatasetNotFound(
            f"audiomnist: expected data/<speaker>/<digit>_<speaker>_<take>.wav under {root} "
            "(the AudioMNIST repository layout)"
        )
    data = found / "data"
    splits = load_splits(found, splits_file)[task]
    files: dict[int, list[tuple[int, int, Path]]] = {}
    for p in data.glob("*/*.wav"):
        m = NAME_RE.match(p.stem)
        if m and p.parent.name.isdigit():
            files.setdefault(int(p.parent.name), []).append((int(m.group(1)), int(m.group(3)), p))
    needed = sorted({s for part in splits.values() for ss in part for s in ss})
    missing = [s for s in needed if s not in files]
    if missing:
        raise DatasetNotFound(
            f"audiomnist: {data} lacks speaker folder(s) "
            f"{', '.join(f'{s:02d}' for s in missing[:8])}{' ...' if len(missing) > 8 else ''}"
            " that the published splits use"
        )
    test_of = {s: k for k, ss in enumerate(splits["test"]) for s in ss}
    if task == "gender":
        gender = _read_genders(data, needed)
        classes = list(GENDERS)
    clips = []
    for spk in needed:
        for digit, _take, p in sorted(files[spk]):
            label = digit if task == "digit" else GENDERS.index(gender[spk])
            fold = str(test_of[spk] + 1) if spk in test_of else "-"
            clips.append(Clip(path=p, label=label, fold=fold, group=f"{spk:02d}"))
    if task == "digit":
        classes = [str(d) for d in range(10)]
    return ClipDataset(
        name="audiomnist" if task == "digit" else "audiomnist-gender",
        classes=classes,
        clips=clips,
        sample_rate=8000,
        clip_seconds=1.0,
        protocols=(task,),
        root=found,
        citation=CITATION,
        notes="load with option task=gender for the gender protocol, task=digit for digit",
        split_fns={task: lambda ds: _paper_splits(ds, splits)},
    )


def _paper_splits(ds: ClipDataset, splits: dict[str, list[list[int]]]) -> list[Split]:
    by_spk: dict[int, list[int]] = {}
    for i, c in enumerate(ds.clips):
        by_spk.setdefault(int(c.group), []).append(i)

    def pick(speakers: set[int] | list[int]) -> tuple[int, ...]:
        return tuple(sorted(i for s in speakers for i in by_spk.get(s, [])))

    out = []
    for k, test_spk in enumerate(splits["test"]):
        val_spk = set(splits["validate"][k])
        if "train" in splits:
            train_spk = set(splits["train"][k])
        else:
            train_spk = set(by_spk) - set(test_spk) - val_spk
        out.append(Split(f"fold{k + 1}", pick(train_spk), pick(test_spk), pick(val_spk)))
    return out


def _read_genders(data: Path, speakers: list[int]) -> dict[int, str]:
    meta = data / "audioMNIST_meta.txt"
    if not meta.is_file():
        raise DatasetNotFound(
            f"audiomnist: the gender task needs speaker metadata {meta} (audioMNIST_meta.txt "
            "from the AudioMNIST repository)"
        )
    text = meta.read_text(encoding="utf-8")
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        try:
            info = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise DatasetNotFound(f"{meta}: not a JSON speaker table") from None
    out = {}
    for s in speakers:
        entry = info.get(f"{s:02d}") or info.get(str(s))
        g = str((entry or {}).get("gender", "")).strip().lower()
        if g not in GENDERS:
            raise DatasetNotFound(f"{meta}: speaker {s:02d} has no male/female gender entry")
        out[s] = g
    return out


# --------------------------------------------------------------------------------------------
# The paper's speaker splits


def _candidates(root: Path) -> list[Path]:
    out = [p for p in (env_path("WB_AUDIOMNIST_SPLITS"),) if p]
    out += [root / SPLITS_NAME, root / "data" / SPLITS_NAME]
    bases = [Path.cwd(), Path(__file__).resolve().parents[2]]
    for base in bases:
        for b in (base, *base.parents):
            out.append(b / "shared" / "data" / SPLITS_NAME)
    return out


def load_splits(
    root: Path, splits_file: str | Path | None = None
) -> dict[str, dict[str, list[list[int]]]]:
    """Read the paper's speaker splits.

    Args:
        root: the dataset folder (searched for the JSON file and for
            ``audiomnist/train/splits.py``).
        splits_file: explicit JSON file; when given it must exist.

    Returns:
        ``{"digit": {"test": [5 lists], "validate": [5 lists]}, "gender": {"train": [4],
        "validate": [4], "test": [4]}}`` of integer speaker ids (``"digit"`` may also hold
        ``"train"``).

    Raises:
        WbError: the explicit file is missing, nothing is found, or the structure is wrong.
    """
    if splits_file is not None:
        path = Path(splits_file).expanduser()
        if not path.is_file():
            raise WbError(f"audiomnist: splits file {path} not found")
        return _validate_splits(_read_json(path), str(path))
    for path in _candidates(root):
        if path.is_file():
            return _validate_splits(_read_json(path), str(path))
    py = root / "audiomnist" / "train" / "splits.py"
    if py.is_file():
        return _validate_splits(_parse_splits_py(py), str(py))
    raise WbError(
        f"audiomnist: cannot find the paper's speaker splits ({SPLITS_NAME} or "
        "audiomnist/train/splits.py); pass splits_file=... or set WB_AUDIOMNIST_SPLITS"
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WbError(f"audiomnist: {path} is not valid JSON ({exc})") from None


def _parse_splits_py(path: Path) -> dict:
    """Evaluate ``splits = {...: [set([...]), ...]}`` as data (literals and ``set()`` only)."""

    def conv(node: ast.AST):
        if isinstance(node, ast.Dict):
            return {conv(k): conv(v) for k, v in zip(node.keys, node.values, strict=True)}
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return [conv(e) for e in node.elts]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("set", "list", "sorted")
            and len(node.args) == 1
            and not node.keywords
        ):
            return conv(node.args[0])
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, str)):
            return node.value
        raise ValueError(f"unsupported syntax at line {getattr(node, 'lineno', '?')}")

    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "splits" for t in stmt.targets
            ):
                return conv(stmt.value)
    except (SyntaxError, ValueError) as exc:
        raise WbError(f"audiomnist: cannot read {path} ({exc})") from None
    raise WbError(f"audiomnist: {path} defines no 'splits' mapping")


def _validate_splits(raw: dict, where: str) -> dict[str, dict[str, list[list[int]]]]:
    need = {"digit": ("test", "validate"), "gender": ("train", "validate", "test")}
    out: dict[str, dict[str, list[list[int]]]] = {}
    try:
        for task, parts in need.items():
            block = raw[task]
            out[task] = {}
            for part in (*parts, *(["train"] if task == "digit" and "train" in block else [])):
                out[task][part] = [sorted(int(s) for s in ss) for ss in block[part]]
            lengths = {len(v) for v in out[task].values()}
            if len(lengths) != 1:
                raise ValueError(f"{task}: parts have different numbers of splits")
    except (KeyError, TypeError, ValueError) as exc:
        raise WbError(f"audiomnist: {where} does not hold the expected splits ({exc})") from None
    return out
