"""The shipped quickstart config's checkpointing (issue #14.4 and "Faults"): fast_dev_run writes no checkpoint
into the real run's folder; a finished or interrupted run resumes with --ckpt_path at the step where it stopped.

Each test runs ``python -m pcdiff.train configs/quickstart.yaml`` in-process inside a temporary working directory
(the config's relative ``outputs/quickstart`` lands there), on 8 phantoms of 64 points."""

from pathlib import Path

import lightning as L
import pytest
import torch

from pcdiff.train import PcdiffCLI, main

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "phantom-cache-quickstart"


def _tiny(cache: Path) -> list[str]:
    return ["--data.phantom_num_scans", "8", "--data.num_points", "64", "--data.cache_dir", str(cache),
            "--data.batch_size", "2", "--model.num_inference_steps", "2", "--model.val_num_samples", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"]  # fmt: skip


def _step(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["global_step"])


class _Record(L.Callback):
    """Records the step training starts at; raises KeyboardInterrupt (Ctrl-C) before batch ``interrupt_at``."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.interrupt_at, self.started_at = interrupt_at, None

    def on_train_start(self, trainer, pl_module):  # noqa: ANN001
        self.started_at = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # noqa: ANN001
        if trainer.global_step == self.interrupt_at:
            raise KeyboardInterrupt


class _Records(list):
    """The :class:`_Record` of each trainer built; ``interrupt_at`` applies to the trainers built next."""

    interrupt_at: int | None = None


@pytest.fixture
def record(monkeypatch):
    """Adds a fresh :class:`_Record` to each trainer the CLI builds."""
    made = _Records()
    build = PcdiffCLI.instantiate_trainer

    def instantiate_trainer(self, **kwargs):  # noqa: ANN001, ANN003
        trainer = build(self, **kwargs)
        made.append(_Record(made.interrupt_at))
        trainer.callbacks.append(made[-1])
        return trainer

    monkeypatch.setattr(PcdiffCLI, "instantiate_trainer", instantiate_trainer)
    return made


def test_fast_dev_run_writes_no_checkpoint(tmp_path, monkeypatch, cache):
    monkeypatch.chdir(tmp_path)
    cli = main([str(QUICKSTART), "--trainer.fast_dev_run", "1", *_tiny(cache)])
    assert cli.trainer.global_step == 1
    assert not list(tmp_path.rglob("*.ckpt"))  # not in outputs/quickstart (the real run's folder), nor elsewhere


def test_a_finished_run_resumes_from_its_last_step(tmp_path, monkeypatch, cache, record):
    monkeypatch.chdir(tmp_path)
    last = tmp_path / "outputs" / "quickstart" / "last.ckpt"
    main([str(QUICKSTART), "--trainer.max_steps", "4", *_tiny(cache)])
    assert _step(last) == 4
    cli = main([str(QUICKSTART), "--trainer.max_steps", "6", "--ckpt_path", str(last), *_tiny(cache)])
    assert record[-1].started_at == 4 and cli.trainer.global_step == 6  # continued: steps 5 and 6 only
    assert _step(last) == 6


def test_an_interrupted_run_saves_and_resumes_at_the_step_where_it_stopped(tmp_path, monkeypatch, cache, record):
    monkeypatch.chdir(tmp_path)
    last = tmp_path / "outputs" / "quickstart" / "last.ckpt"
    record.interrupt_at = 3  # Ctrl-C before step 4, long before the config's every_n_train_steps (200)
    with pytest.raises(SystemExit):  # Lightning's graceful shutdown ends the process
        main([str(QUICKSTART), "--trainer.max_steps", "6", *_tiny(cache)])
    assert _step(last) == 3
    record.interrupt_at = None
    cli = main([str(QUICKSTART), "--trainer.max_steps", "6", "--ckpt_path", str(last), *_tiny(cache)])
    assert record[-1].started_at == 3 and cli.trainer.global_step == 6
    assert _step(last) == 6
