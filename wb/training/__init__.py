"""The training spine shared by every recipe family (separation, classification, ...).

- :mod:`wb.training.sampler`: one seeded, DDP-sharded epoch sampler.
- :mod:`wb.training.schedules`: one learning-rate schedule builder (warm-up + cosine,
  constant, one-cycle, plateau).
- :mod:`wb.training.trainer`: one Trainer factory (``best.ckpt`` / ``last.ckpt`` for exact
  resume, epoch-end time limit, loggers, DDP strategy) and ``fit`` (``weights_only`` resume).
- :mod:`wb.training.warm_start`: ``init_weights`` for ``train.init_from``.

Each LightningModule keeps only its steps and metrics; these pieces are the rest.
"""
