"""The run lifecycle (emodarts_core.training.run) that the search and retraining share.

- the network's configuration is validated once per run, at the boundary, and not again
  on its way to the cells;
- a run on a busy machine whose OpenMP spins (torch loaded before emodarts_core could set
  the wait policy) uses the free cores only, and gives torch its thread count back;
- `on_epoch` callbacks see each epoch after its checkpoint and metrics line are written,
  and their files are part of the run.
"""

import json

import torch

from emodarts_core.config import NetworkConfig
from emodarts_core.darts.architect import Architect
from emodarts_core.darts.search import run_search
from emodarts_core.runtime import threads
from emodarts_core.training.rundir import RunDir
from emodarts_core.training.run import Run
from emodarts_core.training.train import run_retrain
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401


def _count_validations(monkeypatch) -> list:
    calls = []
    real = NetworkConfig.validate
    monkeypatch.setattr(NetworkConfig, "validate", lambda self: calls.append(1) or real(self))
    return calls


def test_the_network_configuration_is_validated_once_per_run(tmp_path, monkeypatch, recwarn):
    net, fold = tiny_net(), tiny_fold(n_search=8)
    calls = _count_validations(monkeypatch)
    for checkpointing in ("off", "on", "auto"):
        calls.clear()
        searched = run_search(fold, net, search_cfg(epochs=1, checkpointing=checkpointing), tmp_path / checkpointing)
        assert len(calls) == 1, checkpointing
    calls.clear()
    run_retrain(fold, searched.genotype, net, train_cfg(epochs=1), tmp_path / "retrain")
    assert len(calls) == 1


def test_a_busy_machine_with_spinning_openmp_runs_on_the_free_cores(tmp_path, monkeypatch, recwarn):
    # torch is loaded in this process, so OpenMP read its policy before emodarts_core could
    # set it: as in a notebook that imports torch first, on a machine where all cores but
    # one are busy
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(threads, "_read_by_openmp", "default")
    cpus = threads._usable_cpus()
    monkeypatch.setattr(threads, "busy_cores", lambda: max(cpus - 1, 1))
    seen = []
    real_step = Architect.step
    monkeypatch.setattr(Architect, "step", lambda self, *a, **k: seen.append(torch.get_num_threads())
                        or real_step(self, *a, **k))
    torch.set_num_threads(2)
    try:
        run_search(tiny_fold(n_search=8), tiny_net(), search_cfg(epochs=1), tmp_path / "run")
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2  # given back when the run ends
    finally:
        torch.set_num_threads(1)


def test_per_epoch_callbacks_follow_the_checkpoint_and_are_kept_on_resume(tmp_path):
    class Settings:  # what a run reads of its SearchConfig or TrainConfig
        device, amp, progress, tensorboard = "cpu", False, False, False

    class Scale:
        def to_dict(self):
            return {"mode": "none"}

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def run_epochs(total, stop_after=None):
        seen = []
        with Run("retrain", tmp_path / "run", Settings()) as run:
            run.claim({"kind": "retrain", "what": "a callback test"}, resume=True)
            ckpt = run.restore({"model": model, "optimizer": optimizer}, Scale())
            run.on_epoch(lambda record: seen.append((record["epoch"], RunDir(run.rd.path).load_checkpoint()["epoch"],
                                                    len(run.rd.read_epochs()))))
            run.on_epoch(lambda record: run.rd.atomic_write_json("extra.json", {"epoch": record["epoch"]}))
            for epoch in run.epochs(ckpt["epoch"] if ckpt else 0, total):
                loss = model(torch.ones(1, 2)).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                run.end_epoch({"epoch": epoch + 1, "train_loss": loss.item(), "seconds": run.elapsed()})
                if epoch + 1 == stop_after:
                    return seen
            run.finish({"epochs": total})
        return seen

    assert run_epochs(3, stop_after=2) == [(1, 1, 1), (2, 2, 2)]
    assert run_epochs(3) == [(3, 3, 3)]  # resumed from the checkpoint of epoch 2
    assert json.loads((tmp_path / "run" / "extra.json").read_text()) == {"epoch": 3}
    assert json.loads((tmp_path / "run" / "FINISHED").read_text()) == {"kind": "retrain", "epochs": 3}
