"""The training spine shared by every recipe family (separation, classification, ...).

- :mod:`wb.training.sampler`: one seeded, DDP-sharded epoch sampler.
- :mod:`wb.training.schedules`: one learning-rate schedule builder (warm-up + cosine,
  constant, one-cycle, plateau).
- :func:`wb.lightning.checkpoint_callbacks`: ``best.ckpt`` / ``last.ckpt``.

Each LightningModule keeps only its steps and metrics; these pieces are the rest.
"""
