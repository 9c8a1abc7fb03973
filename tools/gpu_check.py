#!/usr/bin/env python
"""One-shot GPU check: the device tests, the bench and a short search + retrain, in one JSON report.

    python tools/gpu_check.py                       # on CUDA; about 5 minutes, at most 8
    python tools/gpu_check.py --device cpu --quick  # the dry run CI makes (tests/test_gpu_check.py)

Everything that needs a GPU is run by this single command, so that whoever has a GPU only now
and then checks it all at once, within 8 minutes on one GPU, and every figure lands in one file:

(a) the tests marked `device` (tests/test_device_paths.py and tests/conftest.py) on the
    device, through `EMODARTS_TEST_DEVICE`: a search and a retraining epoch, float16 loss
    scaling, pinned-memory loaders, cuDNN recurrences, the fast network against the plain
    one;
(b) the bench (`emodarts_core.perf.bench`) at the paper preset, first order, at batch 16
    and 64, with and without mixed precision (`SearchConfig.amp`, `training.device.Precision`),
    each with its same-run plain row and ratios and its arithmetic floor (the step's
    counted GFLOP at the device's matrix-product rate in the step's precision,
    `emodarts_core.perf.arithmetic`; docs/PERFORMANCE.md);
(c) a 3-epoch search and a 3-epoch retraining of its genotype on EmoDB fold 1 (`--data-dir`,
    else `EMODARTS_EMODB` / `EMODARTS_EMODB_ROOT` / the registered location, docs/DATA.md),
    or on the generated corpus when EmoDB is not there;
(b2) stacked searches (`bench --stack`, `emodarts_core.perf.stacking`): one stacked step of
    K = 1 and of K = 16 searches of the study's space against as many separate steps, for
    the per-search throughput on the card (`report["stacking"]`);
(d) the report: every figure, the device's name, the torch, CUDA and cuDNN versions, the
    machine's load and the wall time (`--out`, default runs/gpu_check/report.json).

Parts that would start after `--budget-s` seconds are recorded as skipped, so the run ends in
time even on a slow GPU. `--quick` is the dry run: the smoke preset at batch 2 for one step,
one epoch of a smoke-sized network on a small generated corpus (64 utterances). The exit status is 0 when every
part ran and passed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import emodarts_core  # noqa: E402,F401  (chooses OpenMP's wait policy before torch runs anything)

BUDGET_S = 420  # 7 minutes: the 8-minute limit less a margin for the part that is running
# The quick dry run's network: emodarts_core/params/ci.yaml's, on 128 x 128 features.
QUICK_NETWORK = dict(init_channels=2, cnn_cells=3, nodes=2, seq_cells=1, seq_nodes=2, seq_dim=8, stem_stride=4)


def machine_description(dev: torch.device) -> dict:
    """What the figures were measured on."""
    env = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
           else None, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
           "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
           "hostname": platform.node()}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(device_name=torch.cuda.get_device_name(dev), device_memory_mb=props.total_memory / 2**20,
                   compute_capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported(),
                   driver=_nvidia_smi("driver_version"))
    else:
        env["device_name"] = _cpu_name()
    return env


def _nvidia_smi(field: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


class Clock:
    """Wall time since the start, and whether a part may still start within the budget."""

    def __init__(self, budget_s: float):
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def log(msg: str) -> None:
    print(f"[gpu_check] {msg}", file=sys.stderr, flush=True)


# -- (a) the device tests ---------------------------------------------------------------------

def device_test_files() -> list[str]:
    """The test modules that hold tests marked `device` (collecting only them keeps it short)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                  if "mark.device" in p.read_text(encoding="utf-8"))


def run_device_tests(dev: torch.device, timeout_s: float) -> dict:
    """`pytest -m device` on `dev` in a subprocess; counts and failing test names from its JUnit XML."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "device",
               f"--junitxml={junit}", *device_test_files()]
        env = {**os.environ, "EMODARTS_TEST_DEVICE": str(dev), "MPLBACKEND": "Agg"}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(timeout_s, 1))
            returncode, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            returncode = None
            output = ((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes)
                      else (exc.stdout or "")) + f"\ntimed out after {timeout_s:.0f} s"
        out = {"command": " ".join(cmd[1:]), "env": {"EMODARTS_TEST_DEVICE": str(dev)}, "returncode": returncode,
               "seconds": time.perf_counter() - t0, "output_tail": output[-3000:]}
        if junit.is_file():
            suite = ET.parse(junit).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
            counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
            out.update(counts)
            out["failed"] = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                             if case.find("failure") is not None or case.find("error") is not None]
            out["skipped_tests"] = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                                    if case.find("skipped") is not None]
    out["ok"] = returncode == 0 and out.get("tests", 0) > 0
    return out


# -- (b) the bench ----------------------------------------------------------------------------

def run_bench(dev: torch.device, quick: bool, clock: Clock) -> list[dict]:
    """The bench at each batch and precision, with its same-run plain row; one entry per setting."""
    from emodarts_core.perf.bench import benchmark

    if quick:
        name, batches, steps, warmup, ref_steps, ref_warmup = "smoke", (2,), 1, 0, 1, 0
    else:
        name, batches, steps, warmup, ref_steps, ref_warmup = "paper", (16, 64), 3, 2, 2, 1
    results = []
    for batch in batches:
        for amp in (True, False):
            setting = {"preset": name, "order": 1, "batch": batch, "amp": amp}
            if clock.left() < (0 if quick else 30):
                results.append({**setting, "skipped": f"time budget ({clock.budget_s:.0f} s) spent"})
                continue
            log(f"bench {setting}")
            t0 = time.perf_counter()
            try:
                r = benchmark(name, 1, batch, steps, warmup, device=str(dev), amp=amp, log=log,
                              plain_steps=ref_steps, plain_warmup=ref_warmup, estimate=not quick,
                              floor=True)
                results.append({**setting, **r, "wall_seconds": time.perf_counter() - t0})
            except Exception as exc:  # an out-of-memory at batch 64 is a figure too
                results.append({**setting, "error": f"{type(exc).__name__}: {exc}",
                                "traceback": traceback.format_exc()[-2000:], "wall_seconds": time.perf_counter() - t0})
            finally:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
    return results


def run_stacking(dev: torch.device, quick: bool, clock: Clock) -> list[dict]:
    """K = 1 against K = 16 stacked searches of the study's step (`bench --stack`,
    `emodarts_core.perf.stacking`): per-search throughput against K separate searches."""
    from emodarts_core.config import SearchConfig, preset
    from emodarts_core.perf.bench import study_settings
    from emodarts_core.perf.stacking import compare

    if quick:
        net_cfg, cfg, batch, stacks, steps = preset("smoke"), SearchConfig(order=1), 2, (1, 2), 1
    else:
        base, network, cfg = study_settings("study_emodb_v2")
        net_cfg, batch, stacks, steps = preset(base, **network), cfg.batch_size, (1, 16), 3
    results = []
    for K in stacks:
        if clock.left() < (0 if quick else 30):
            results.append({"K": K, "skipped": f"time budget ({clock.budget_s:.0f} s) spent"})
            continue
        log(f"stacked searches K={K}")
        try:
            results.append(compare(net_cfg, cfg, K, batch, steps, dev, None))
        except Exception as exc:
            results.append({"K": K, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]})
        finally:
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return results


# -- (c) search and retrain -------------------------------------------------------------------

def load_data(data_dir: str | None, dataset: str | None):
    """EmoDB fold 1 when it is there (or `dataset` as asked), else the generated corpus."""
    import data_prep
    from data_prep.registry import locate

    if dataset is None:
        dataset = "emodb" if data_dir is not None or locate("emodb") is not None else "synthetic"
    location = data_prep.resolve(dataset, data_dir)
    fold = data_prep.load_fold(dataset, data_dir, 1, seed=0)
    where = str(location.path) if location.path is not None else "the generated corpus, in the cache"
    return dataset, f"{where} ({location.source})", fold


def small_generated_fold(folder: Path):
    """Fold 1 of a small generated corpus made in `folder` (8 speakers x 4 classes x 2 utterances
    of 1 s, about 5 s to make): the quick run does not depend on the cached full corpus."""
    import data_prep
    from data_prep.prepare import prepare
    from data_prep.synthetic import generate

    corpus = generate(folder / "corpus", seed=0, n_speakers=8, per_class_per_speaker=2, duration_s=1.0)
    prepare("synthetic", corpus, folder / "store", jobs=1, progress=False)
    return "synthetic", f"a small generated corpus in {folder}", data_prep.load_fold("synthetic", folder / "store", 1)


def run_search_and_retrain(dev: torch.device, quick: bool, epochs: int, data_dir: str | None, dataset: str | None,
                           work_dir: Path) -> tuple[dict, dict]:
    from emodarts_core.config import NetworkConfig, SearchConfig, TrainConfig, preset, to_dict
    from emodarts_core.darts.search import run_search
    from emodarts_core.training.train import run_retrain

    t0 = time.perf_counter()
    if quick and data_dir is None and dataset in (None, "synthetic"):
        dataset, where, fold = small_generated_fold(work_dir / "generated")
    else:
        dataset, where, fold = load_data(data_dir, dataset)
    data_seconds = time.perf_counter() - t0
    n_classes = len(fold.classes)
    net_cfg = (NetworkConfig(n_classes=n_classes, **QUICK_NETWORK) if quick
               else preset("paper", n_classes=n_classes)).validate()
    batch = 32 if quick else 16
    # the quick run skips the memory estimator's probe ("auto"); the device tests run it
    search_cfg = SearchConfig(epochs=epochs, batch_size=batch, device=str(dev), seed=0, progress=False,
                              checkpointing="off" if quick else "auto").validate()
    log(f"search: {dataset}, {epochs} epoch(s), batch {batch}")
    t0 = time.perf_counter()
    found = run_search(fold, net_cfg, search_cfg, work_dir / "search")
    search = {"dataset": dataset, "data": where, "data_seconds": data_seconds,
              "utterances": {s: len(getattr(fold, s)) for s in ("search", "train", "test")},
              "network": to_dict(net_cfg), "config": to_dict(search_cfg), "seconds": time.perf_counter() - t0,
              "history": found.history, "genotype": found.genotype.to_dict(), "run_dir": str(found.run_dir)}
    search["ok"] = len(found.history) == epochs and all(
        math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in found.history)

    train_cfg = TrainConfig(epochs=epochs, batch_size=batch, device=str(dev), seed=0, progress=False).validate()
    log(f"retrain: {epochs} epoch(s)")
    t0 = time.perf_counter()
    trained = run_retrain(fold, found.genotype, net_cfg, train_cfg, work_dir / "retrain")
    retrain = {"config": to_dict(train_cfg), "seconds": time.perf_counter() - t0, "test_ua": trained.test_ua,
               "test_wa": trained.test_wa, "params": trained.params, "best_epoch": trained.best_epoch,
               "confusion": trained.confusion.tolist(), "history": trained.history}
    retrain["ok"] = len(trained.history) == epochs and 0.0 <= trained.test_ua <= 1.0
    return search, retrain


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true",
                        help="dry run: smoke preset, batch 2, 1 step, 1 epoch on a small generated corpus")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_check" / "report.json")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the search and retraining runs go (default: a new folder beside --out)")
    parser.add_argument("--data-dir", default=None, help="EmoDB corpus root or feature store")
    parser.add_argument("--dataset", default=None,
                        help="override: emodb or synthetic (default: emodb when it is found, else synthetic)")
    parser.add_argument("--epochs", type=int, default=None, help="search and retraining epochs (default 3; quick: 1)")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S,
                        help="no part starts after this many seconds (default 420: the check ends within 8 minutes)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("tests", "bench", "search", "stacking"),
                        help="parts to leave out")
    args = parser.parse_args(argv)

    from emodarts_core.training.device import configure_backends, pin_memory_for, resolve_device

    clock = Clock(args.budget_s)
    dev = resolve_device(args.device)
    epochs = args.epochs or (1 if args.quick else 3)
    dataset = args.dataset
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    work_dir = args.work_dir or args.out.parent / f"runs-{stamp}"
    report = {"tool": "tools/gpu_check.py", "argv": sys.argv[1:] if argv is None else list(argv),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "quick": args.quick,
              "device": str(dev), "environment": machine_description(dev),
              "decisions": {**configure_backends(dev), "pin_memory": pin_memory_for(dev)},
              "budget_seconds": args.budget_s, "tests": None, "bench": None, "search": None, "retrain": None}
    log(f"device {dev} ({report['environment']['device_name']}), torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}")

    if "tests" not in args.skip:
        log("device tests")
        report["tests"] = run_device_tests(dev, timeout_s=min(240.0, max(clock.left(), 1.0)))
    if "search" not in args.skip:
        if clock.left() > 0:
            try:
                report["search"], report["retrain"] = run_search_and_retrain(dev, args.quick, epochs, args.data_dir,
                                                                             dataset, work_dir)
            except Exception as exc:
                report["search"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                    "traceback": traceback.format_exc()[-3000:]}
        else:
            report["search"] = {"ok": False, "skipped": "time budget spent"}
    if "bench" not in args.skip:
        report["bench"] = run_bench(dev, args.quick, clock)
    if "stacking" not in args.skip:
        report["stacking"] = run_stacking(dev, args.quick, clock)

    parts_ok = []
    if report["tests"] is not None:
        parts_ok.append(report["tests"]["ok"])
    if "search" not in args.skip:
        parts_ok += [bool(report["search"] and report["search"].get("ok")),
                     bool(report["retrain"] and report["retrain"].get("ok"))]
    if report["bench"] is not None:
        parts_ok.append(all("error" not in r and "skipped" not in r for r in report["bench"]))
    if report.get("stacking") is not None:
        parts_ok.append(all("error" not in r and "skipped" not in r for r in report["stacking"]))
    report["ok"] = all(parts_ok)
    report["wall_seconds"] = clock.elapsed()
    report["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=_jsonable))
    os.replace(tmp, args.out)
    log(f"{'all parts passed' if report['ok'] else 'SOME PARTS FAILED'} in {report['wall_seconds']:.0f} s; "
        f"report: {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
