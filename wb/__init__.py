"""wb: an audio source separation and music ML workbench.

Packages: :mod:`wb` (CLI, audio I/O, config, checkpoints, run folders), :mod:`separation`,
:mod:`music`, :mod:`classify`, and thin recipes under :mod:`recipes`.
"""

__version__ = "0.1.0"
