"""The training spine: one sampler and one schedule builder for every recipe family."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from wb.errors import ConfigError
from wb.training.sampler import EpochSampler
from wb.training.schedules import configure_schedule


def test_shuffled_sampler_is_seeded_per_epoch_and_tagged():
    s = EpochSampler(10, seed=3, shuffle=True)
    s.set_epoch(1)
    a = list(s)
    s.set_epoch(1)
    assert list(s) == a and all(e == 1 for _, e in a)
    assert sorted(i for i, _ in a) == list(range(10))
    s.set_epoch(2)
    assert [i for i, _ in s] != [i for i, _ in a]
    assert list(EpochSampler(10, seed=4, shuffle=True)) != list(
        EpochSampler(10, seed=3, shuffle=True)
    )


@pytest.mark.parametrize("n", [1001, 1000, 3, 1])
@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_get_equal_counts_like_distributed_sampler(n, shuffle):
    """Unequal batch counts across DDP ranks deadlock the all-reduce: every rank yields
    ceil(n / world) items and together they cover every index (a few twice)."""
    world = 3
    shards = [EpochSampler(n, 7, shuffle, rank=r, world=world) for r in range(world)]
    for s in shards:
        s.set_epoch(3)
    lists = [list(s) for s in shards]
    assert [len(s) for s in shards] == [len(x) for x in lists] == [-(-n // world)] * world
    assert {i for x in lists for i, _ in x} == set(range(n))
    assert all(e == 3 for x in lists for _, e in x)


def test_sequential_sampler_matches_the_position_rule():
    """Without shuffling, rank r takes positions r, r + world, ... of 0..n-1 wrapped around
    (the rule the separation sampler used before it moved here)."""
    n, world = 5, 2
    for r in range(world):
        got = list(EpochSampler(n, with_epoch=False, rank=r, world=world))
        assert got == [p % n for p in range(r, -(-n // world) * world, world)]
    assert list(EpochSampler(5, with_epoch=False)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="rank 2 outside 0..1"):
        list(EpochSampler(5, rank=2, world=2))


def _lrs(schedule: str, steps: int, **kw) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    cfg = configure_schedule(opt, schedule, total_steps=steps, **kw)
    if cfg is opt:
        return [0.1] * steps
    sched = cfg["lr_scheduler"]["scheduler"]
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_cosine_follows_the_closed_form():
    lrs = _lrs("cosine", 20, warmup_steps=4, min_lr_ratio=0.1)
    for s, lr in enumerate(lrs):
        if s < 4:
            ref = 0.1 * (s + 1) / 4
        else:
            t = (s - 4) / 16
            ref = 0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
        assert lr == pytest.approx(ref, rel=1e-6)


def test_other_schedules_and_errors():
    assert _lrs("none", 5, warmup_steps=3) == [0.1] * 5
    assert _lrs("constant", 5, warmup_steps=2) == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.1])
    one = _lrs("onecycle", 50, warmup_steps=10)
    assert max(one) == pytest.approx(0.1) and abs(one.index(max(one)) - 10) <= 1 and one[-1] < 1e-3
    p = torch.nn.Parameter(torch.zeros(1))
    plateau = configure_schedule(torch.optim.SGD([p], lr=0.1), "plateau", total_steps=1,
                                 monitor="val/loss")  # fmt: skip
    assert plateau["lr_scheduler"]["interval"] == "epoch"
    with pytest.raises(ConfigError, match="needs a monitored metric"):
        configure_schedule(torch.optim.SGD([p], lr=0.1), "plateau", total_steps=1)
    with pytest.raises(ConfigError, match="unknown schedule 'step'"):
        configure_schedule(torch.optim.SGD([p], lr=0.1), "step", total_steps=1)


def test_train_config_shared_names_legacy_names_and_checks():
    from wb.training.config import TrainConfig

    cfg = TrainConfig.from_dict(
        {"max_epochs": 7, "scheduler": "plateau", "clip_grad": 2.0, "max_time_minutes": 5}
    )
    assert (cfg.epochs, cfg.schedule, cfg.grad_clip, cfg.time_limit_minutes) == (
        7,
        "plateau",
        2.0,
        5,
    )
    assert "max_epochs" not in cfg.to_dict() and cfg.to_dict()["epochs"] == 7
    with pytest.raises(ConfigError, match="max_epochs is the former name of epochs"):
        TrainConfig.from_dict({"max_epochs": 7, "epochs": 8})
    with pytest.raises(ConfigError, match="unknown key.*epoch.*known: "):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="warmup_steps or train.warmup_epochs, not both"):
        TrainConfig.from_dict({"warmup_steps": 5, "warmup_epochs": 1.0})
    with pytest.raises(ConfigError, match="train.epochs must be >= 1"):
        TrainConfig.from_dict({"epochs": 0})
    warm = TrainConfig.from_dict({"warmup_epochs": 0.5})
    assert warm.warmup(total_steps=100, epochs=10) == 5  # half of 10 steps per epoch
    assert TrainConfig.from_dict({"warmup_steps": 3}).warmup(100, 10) == 3
    floor = TrainConfig.from_dict({"lr": 1e-3, "min_lr": 1e-5, "min_lr_ratio": 0.5})
    assert floor.floor_ratio() == pytest.approx(0.01)  # the absolute floor wins


def test_ranks_agree_fails_when_ddp_ranks_differ():
    from types import SimpleNamespace

    from wb.errors import WbError
    from wb.training.trainer import RanksAgree

    module = torch.nn.Linear(2, 1)

    def trainer(sums):
        strategy = SimpleNamespace(all_gather=lambda t: torch.tensor(sums, dtype=torch.float64))
        return SimpleNamespace(world_size=len(sums), strategy=strategy, is_global_zero=True)

    check = RanksAgree()
    check.on_train_end(trainer([1.5]), module)  # one process: nothing to compare
    assert check.agreed is None
    check.on_train_end(trainer([1.5, 1.5]), module)
    assert check.agreed is True
    with pytest.raises(WbError, match="DDP ranks hold different weights"):
        RanksAgree().on_train_end(trainer([1.5, 1.6]), module)


def test_former_names_and_pairs():
    from wb.training.config import TrainConfig, rename_legacy, rename_legacy_override

    assert rename_legacy({"max_epochs": 3, "lr": 1.0}) == {"epochs": 3, "lr": 1.0}
    assert rename_legacy_override("train.max_epochs=3") == "train.epochs=3"
    assert rename_legacy_override("+train.clip_grad=1") == "+train.grad_clip=1"
    assert rename_legacy_override("model.max_epochs=3") == "model.max_epochs=3"

    @dataclasses.dataclass
    class Family(TrainConfig):  # a family whose defaults set the other key of each pair
        warmup_epochs: float = 1.0
        min_lr: float | None = 1e-5

    cfg = Family.from_dict({"warmup_steps": 7, "min_lr_ratio": 0.5})
    assert (cfg.warmup_steps, cfg.warmup_epochs, cfg.min_lr, cfg.floor_ratio()) == (
        7,
        0.0,
        None,
        0.5,
    )


def test_rename_monitors_keeps_callback_state_on_resume():
    from wb.training.trainer import rename_monitors

    key = "ModelCheckpoint{'monitor': 'val/sisdr', 'mode': 'max', 'every_n_train_steps': 0}"
    ckpt = {"callbacks": {key: {"monitor": "val/sisdr", "best_model_score": 3.0}, "Other": {}}}
    rename_monitors(ckpt, {"val/sisdr": "val/si_sdr"})
    new = key.replace("val/sisdr", "val/si_sdr")
    assert set(ckpt["callbacks"]) == {new, "Other"}
    assert ckpt["callbacks"][new] == {"monitor": "val/si_sdr", "best_model_score": 3.0}


def test_weight_ema_matches_the_recurrence_and_reaches_checkpoints(tmp_path):
    """``ema_decay``: the averaged weights follow e_1 = w_1, e_k = d e_(k-1) + (1 - d) w_k
    over optimizer steps; validation scores them, ``last.ckpt`` holds them as ``state_dict``
    (the raw weights under ``current_model_state``), and the module holds them after fit."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from wb.training.config import TrainConfig
    from wb.training.trainer import make_trainer

    torch.manual_seed(0)
    x = torch.randn(8, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    raw: list[dict] = []
    val_seen: list[torch.Tensor] = []

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def training_step(self, batch, _):
            return torch.nn.functional.mse_loss(self.lin(batch[0]), batch[1])

        def on_train_batch_end(self, *_):
            raw.append({k: v.detach().clone() for k, v in self.state_dict().items()})

        def validation_step(self, batch, _):
            val_seen.append(self.lin.weight.detach().clone())
            loss = torch.nn.functional.mse_loss(self.lin(batch[0]), batch[1])
            self.log("val/loss", loss)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    decay = TrainConfig.from_dict({"ema_decay": 0.6}).ema_decay
    with pytest.raises(ConfigError, match="ema_decay must be in"):
        TrainConfig.from_dict({"ema_decay": 1.0})
    module = Tiny()
    trainer, _ = make_trainer(
        tmp_path, monitor="val/loss", mode="min", max_epochs=2, precision="32-true",
        loggers=[], progress_bar=False, ema_decay=decay, accelerator="cpu",
    )  # fmt: skip
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    assert len(raw) == 8
    ema = dict(raw[0])
    for i, w in enumerate(raw[1:], start=2):
        ema = {k: decay * ema[k] + (1 - decay) * w[k] for k in ema}
        if i == 4:  # end of epoch 1: validation ran on the average
            assert torch.allclose(val_seen[0], ema["lin.weight"])
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    for k, v in ema.items():
        assert torch.allclose(ckpt["state_dict"][k], v, atol=1e-6)
        assert torch.allclose(ckpt["current_model_state"][k], raw[-1][k])
        assert torch.allclose(module.state_dict()[k], v, atol=1e-6)
    assert not torch.allclose(ema["lin.weight"], raw[-1]["lin.weight"])


def test_repeated_seed_reads_the_recorded_config_only():
    from wb.training.warm_start import repeated_seed

    recorded = {"config": {"train": {"seed": 3}}}
    assert "train.seed 3" in repeated_seed(recorded, 3)
    assert repeated_seed(recorded, 4) is None
    for odd in ({}, {"meta": 1}, {"config": None}, {"config": {"train": {"seed": "x"}}}, None):
        assert repeated_seed(odd, 3) is None
