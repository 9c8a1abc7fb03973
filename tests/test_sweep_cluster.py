"""A sweep spread over a two-node Ray cluster, started on this machine the way
docs/SWEEPS.md ("A cluster") tells users to start one, token authentication included.

The slow tests start a head with `ray start --head` and later join a second node with
`ray start --address=127.0.0.1:PORT`, one CPU each, in a private temp dir and private HOMEs
(so nothing is shared with a Ray instance already running on this machine). The head's
HOME holds a Ray token, as it does on any machine where a local `ray.init` (a one-machine
sweep) ran: Ray (>= 2.59) then turns token authentication on for `ray start --head`, and a
node or driver that joins by address must follow the recipe: RAY_AUTH_MODE=token and the
head's token copied into its own ~/.ray/auth_token.

- a sweep run on the head alone, then the same sweep (new results folder) once the second
  node has joined and run a task: the second ran tasks on both nodes (recorded per task in
  sweep.json and shown in the progress table), and each run directory holds the same
  results, weights and genotype as the one-node run (every task is seeded; on CPU a run
  is bit for bit);
- a sweep that connects without RAY_AUTH_MODE=token stops with exit status 2 and a message
  naming the fix, not with Ray's traceback.

Every `ray start --block` runs in a session of its own; the fixture's finaliser kills every
process of those sessions (and any process naming the private temp dir) by id, even when
a test fails. `ray stop` is never called: it stops every Ray process on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from emodarts_core.study import sweep
from emodarts_core.study.sweep import ClusterAuthError, Task, TaskStatus
from emodarts_core.training.rundir import RunDir
from loop_helpers import pids_naming, session_pids

REPO = Path(__file__).resolve().parents[1]
STARTED = "Ray runtime started"  # what `ray start` prints once its node has registered
START_SECONDS = 120  # a busy 2-core machine needs tens of seconds per node; `ray start` gives up after ~60 s
START_TRIES = 3

# A search -> retrain chain and two baselines, small: fold 1 of the generated corpus.
PARAMS = {"network": {"preset": "smoke", "input_size": [128, 128], "stem_stride": 8},
          "search": {"epochs": 1, "batch_size": 16}, "train": {"epochs": 2, "batch_size": 16}}
SWEEP = ["--datasets", "synthetic", "--folds", "1", "--scopes", "emodarts", "--baselines", "cnn", "cnn_lstm"]


# -- without a cluster ---------------------------------------------------------------------
REFUSED = "RPC error: InvalidAuthToken: Authentication token is missing or incorrect"


def _refused_with_auth_error(*_args, **_kwargs):
    """`ray.init(address=...)` when the cluster wants a token: Ray's AuthenticationError as the cause."""
    from ray.exceptions import AuthenticationError

    try:
        raise AuthenticationError(REFUSED)
    except AuthenticationError as auth:
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from auth


def _refused_with_quoted_error(*_args, **_kwargs):
    """The same as Ray 2.60 raised it here: the cause is a RuntimeError quoting Ray's error."""
    try:
        raise RuntimeError("Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
                           f"  ...\nray.exceptions.AuthenticationError: {REFUSED}. Note: RAY_AUTH_MODE is currently "
                           "'disabled' (not 'token'). Ensure that the token ...")
    except RuntimeError as gcs:
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from gcs


@pytest.mark.parametrize("refused", [_refused_with_auth_error, _refused_with_quoted_error])
def test_a_cluster_that_refuses_the_token_gives_the_fix_not_a_traceback(refused, tmp_path, monkeypatch, capsys):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.exceptions").AuthenticationError  # noqa: B018  (Ray >= 2.52)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refused)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(ClusterAuthError, match=r"10\.0\.0\.1:6379 requires token authentication.*sent no token"
                                               r".*RAY_AUTH_MODE=token.*auth_token.*RAY_AUTH_TOKEN_PATH"
                                               rf".*Ray said: {REFUSED}$"):
        sweep.cluster.init_ray("10.0.0.1:6379", None)

    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    code = sweep.main([*SWEEP, "--params", str(params), "--results", str(tmp_path / "r"), "--address",
                       "10.0.0.1:6379", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: the Ray cluster at 10.0.0.1:6379") and "Traceback" not in err
    manifest = json.loads((tmp_path / "r" / "sweep.json").read_text())
    assert manifest["counts"]["pending"] == 3  # nothing ran


def test_other_connection_errors_are_left_as_they_are(monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def unreachable(*_args, **_kwargs):
        raise ConnectionError("Could not find any running Ray instance")

    monkeypatch.setattr(ray, "init", unreachable)
    with pytest.raises(ConnectionError, match="Could not find any running Ray instance") as caught:
        sweep.cluster.init_ray("10.0.0.1:6379", None)
    assert not isinstance(caught.value, ClusterAuthError)


def test_the_table_tells_two_nodes_on_one_host_apart():
    a, b = sweep.node_label("box", "1f2e3d4c" + "0" * 48), sweep.node_label("box", "9a8b7c6d" + "0" * 48)
    assert (a, b) == ("box/1f2e3d4c", "box/9a8b7c6d")
    statuses = [TaskStatus(Task("synthetic", 1, "baseline", "cnn"), status="done", node=a, node_id="1f2e3d4c"),
                TaskStatus(Task("synthetic", 2, "baseline", "cnn"), status="running", node=b, node_id="9a8b7c6d")]
    rows = sweep.format_table(statuses).splitlines()
    assert "node" in rows[1] and a in rows[2] and b in rows[3]
    assert statuses[0].to_dict()["node_id"] == "1f2e3d4c"


# -- a two-node cluster on this machine ----------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class LocalCluster:
    """Ray nodes started with `ray start --block` on this machine, in `root` only.

    Each node gets its own temp dir and HOME under `root` (a short path: Ray's socket
    paths must stay under 108 characters) and free ports, so that it shares nothing with
    another Ray instance on the machine; each runs in a session of its own, which `stop`
    kills by id.
    """

    def __init__(self, root: Path, ray_cli: str):
        self.root, self.ray_cli = root, ray_cli
        self.port, self.address = 0, ""
        self.head_home = root / "home_head"
        (self.head_home / ".ray").mkdir(parents=True)
        # The head machine's token, as a local ray.init leaves it (Ray writes 64 hex digits).
        (self.head_home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
        base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        from data_prep.registry import cache_dir

        # One data cache at one path for every node (docs/SWEEPS.md); the real one, already built.
        self.env = {**base, "RAY_TMPDIR": str(root), "EMODARTS_CACHE": str(cache_dir()), "PYTHONUNBUFFERED": "1",
                    "OMP_NUM_THREADS": "1"}
        self.sessions: list[int] = []
        self.nodes = 0

    def driver_env(self, **extra) -> dict:
        """A shell on the head machine: its HOME (and token file) and `extra`."""
        return {**self.env, "HOME": str(self.head_home), **extra}

    def _start(self, name: str, make_args, env: dict) -> None:
        """Start one node; wait until it has registered. Retried once when Ray's own start
        times out (a busy machine); skip if it cannot start here, fail if the token was refused."""
        for attempt in range(START_TRIES):
            log_path = self.root / f"{name}{attempt}.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen([self.ray_cli, "start", "--block", *make_args()], env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            self.sessions.append(proc.pid)
            deadline = time.time() + START_SECONDS
            while (time.time() < deadline and proc.poll() is None
                   and STARTED not in log_path.read_text(errors="replace")):
                time.sleep(0.5)
            text = log_path.read_text(errors="replace")
            if proc.poll() is None and STARTED in text:
                self.nodes += 1
                return
            assert "InvalidAuthToken" not in text, f"{name} was refused by the head:\n{text[-3000:]}"
            self._stop_session(proc.pid)
        pytest.skip(f"ray could not start the {name} node on this machine ({START_TRIES} tries): "
                    f"{self._why(name) or text[-600:]}")

    def _why(self, name: str) -> str:
        """The raylet's fatal line, if it died (e.g. its agents took longer than it waits for on a
        busy machine: "Timed out waiting for file .../dashboard_agent_listen_port_...")."""
        raylet = self.root / ("h" if name == "head" else "n") / "session_latest" / "logs" / "raylet.out"
        try:
            lines = raylet.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return next((line for line in lines if "(raylet)" in line and " C " in line), "")

    def _common(self) -> list[str]:
        # Random worker ports and a free agent port: two nodes on one host must not share the fixed
        # defaults. No log monitor: nothing reads the nodes' logs, and it is one process less to start.
        return ["--num-cpus=1", "--num-gpus=0", "--min-worker-port=0", "--max-worker-port=0",
                f"--dashboard-agent-listen-port={_free_port()}", "--object-store-memory=100000000",
                "--include-log-monitor=false", "--disable-usage-stats"]

    def start_head(self) -> None:
        """`ray start --head` on the head machine, whose HOME holds a token."""

        def args():
            self.port = _free_port()  # a fresh one for each try
            self.address = f"127.0.0.1:{self.port}"
            return ["--head", f"--port={self.port}", "--include-dashboard=false",
                    f"--ray-client-server-port={_free_port()}", f"--temp-dir={self.root / 'h'}", *self._common()]

        self._start("head", args, self.driver_env())

    def add_node(self) -> None:
        """Join a second node as docs/SWEEPS.md says: the head's token copied to this node's
        ~/.ray/auth_token, and RAY_AUTH_MODE=token."""
        home = self.root / "home_node"
        (home / ".ray").mkdir(parents=True)
        shutil.copy(self.head_home / ".ray" / "auth_token", home / ".ray" / "auth_token")
        self._start("node", lambda: [f"--address={self.address}", f"--temp-dir={self.root / 'n'}", *self._common()],
                    {**self.env, "HOME": str(home), "RAY_AUTH_MODE": "token"})

    def wait_until_both_nodes_take_tasks(self, env: dict, timeout: float = 240) -> set[str]:
        """Run pairs of one-CPU tasks until they ran on two nodes; return the node ids.

        A node that has just joined takes tasks only once it has started a worker process,
        which takes tens of seconds on a busy machine; until then Ray's driver reuses the
        head's worker for the next task, and a short sweep runs wholly on the head.
        """
        probe = ("import json, sys, time, ray\n"
                 "ray.init(address=sys.argv[1], log_to_driver=False)\n"
                 "@ray.remote(num_cpus=1)\n"
                 "def where():\n"
                 "    time.sleep(3)\n"
                 "    return ray.get_runtime_context().get_node_id()\n"
                 "deadline, seen = time.time() + float(sys.argv[2]), set()\n"
                 "while len(seen) < 2 and time.time() < deadline:\n"
                 "    seen = set(ray.get([where.remote(), where.remote()]))\n"
                 "print(json.dumps(sorted(seen)))\n")
        proc = subprocess.Popen([sys.executable, "-c", probe, self.address, str(timeout - 60)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            _kill(session_pids(proc.pid), signal.SIGKILL)
        assert proc.returncode == 0, err[-3000:]
        seen = set(json.loads(out.strip().splitlines()[-1]))
        assert len(seen) == 2, f"the second node took no task within {timeout - 60} s"
        return seen

    def _stop_session(self, sid: int, wait: float = 15.0) -> None:
        """SIGTERM the session (Ray's `--block` then stops its node), SIGKILL what is left."""
        _kill(session_pids(sid), signal.SIGTERM)
        deadline = time.time() + wait
        while session_pids(sid) and time.time() < deadline:
            time.sleep(0.3)
        deadline = time.time() + wait
        while (left := session_pids(sid)) and time.time() < deadline:
            _kill(left, signal.SIGKILL)
            time.sleep(0.2)

    def stop(self) -> None:
        for sid in self.sessions:
            self._stop_session(sid)
        _kill(pids_naming(str(self.root)), signal.SIGKILL)  # anything of ours that left its session
        time.sleep(0.5)
        survivors = [p for sid in self.sessions for p in session_pids(sid)] + pids_naming(str(self.root))
        shutil.rmtree(self.root, ignore_errors=True)
        assert not survivors, f"Ray processes of the test cluster survived: {survivors}"


@pytest.fixture(scope="module")
def cluster():
    """A Ray head on this machine (one CPU, token authentication on); tests may add a node."""
    pytest.importorskip("ray")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the `ray` command is not installed next to this Python")
    if not sys.platform.startswith("linux"):
        pytest.skip("this test finds the processes it started in /proc (Linux)")
    c = LocalCluster(Path(tempfile.mkdtemp(prefix="rc", dir="/tmp")), ray_cli)
    try:
        c.start_head()
        yield c
    finally:
        c.stop()


def _run_sweep(c: LocalCluster, results: Path, params: Path, env: dict, timeout: float = 600):
    """The sweep CLI against the cluster, in a session of its own (killed if it overruns)."""
    proc = subprocess.Popen([sys.executable, "-m", "emodarts_core.sweep", *SWEEP, "--params", str(params),
                             "--results", str(results), "--address", c.address], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        _kill(session_pids(proc.pid), signal.SIGKILL)
    return proc.returncode, out, err


def _run_dirs(results: Path) -> dict[Path, Path]:
    """Finished run directories, by their path relative to `results`."""
    return {p.parent.relative_to(results): p.parent for p in results.rglob("FINISHED")}


def _same_runs(one: Path, two: Path) -> None:
    """Each run directory of `two` holds what the same one of `one` holds (times aside)."""
    runs_one, runs_two = _run_dirs(one), _run_dirs(two)
    assert sorted(runs_one) == sorted(runs_two) and len(runs_one) == 4  # a search and three retrainings
    for rel, a in runs_one.items():
        b = runs_two[rel]
        epochs = [[{k: v for k, v in r.items() if k != "seconds"} for r in RunDir(d).read_epochs()] for d in (a, b)]
        assert epochs[0] == epochs[1] and epochs[0], rel
        for name in ("result.json", "genotype.json", "alpha_history.json"):
            if (a / name).exists():
                assert json.loads((a / name).read_text()) == json.loads((b / name).read_text()), rel / name
        if (a / "model.pt").exists():
            wa, wb = torch.load(a / "model.pt"), torch.load(b / "model.pt")
            assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), rel / "model.pt"


@pytest.mark.slow
def test_a_sweep_spreads_over_two_nodes_and_matches_a_one_node_run(cluster, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    env = cluster.driver_env(RAY_AUTH_MODE="token")  # the recipe's driver, on the head machine

    code, out, err = _run_sweep(cluster, tmp_path / "one", params, env)  # the head alone
    assert code == 0, out[-3000:] + err[-3000:]
    one = json.loads((tmp_path / "one" / "sweep.json").read_text())
    assert one["ray"]["cluster"]["CPU"] == 1.0
    head = {t["node_id"] for t in one["tasks"]}
    assert len(head) == 1 and None not in head

    cluster.add_node()  # joined the recipe's way: token file + RAY_AUTH_MODE=token
    both = cluster.wait_until_both_nodes_take_tasks(env)
    code, out, err = _run_sweep(cluster, tmp_path / "two", params, env)
    assert code == 0, out[-3000:] + err[-3000:]
    two = json.loads((tmp_path / "two" / "sweep.json").read_text())
    assert two["ray"]["cluster"]["CPU"] == 2.0 and two["counts"]["done"] == 3
    nodes = {t["node_id"] for t in two["tasks"]}
    assert nodes == both and head < nodes, f"the tasks did not spread over both nodes: {two['tasks']}"
    for t in two["tasks"]:  # a task's time is its own, from its start on its node
        assert t["seconds"] >= sum(s["seconds"] for s in t["stages"].values()) > 0, t
    assert not any(socket.gethostname() in str(t["node"]) for t in two["tasks"])  # no host name in sweep.json
    labels = set(json.loads((tmp_path / "two" / "sweep.hosts.json").read_text()).values())
    assert len(labels) == 2 and all(sweep.node_label(socket.gethostname(), n) in labels for n in nodes)
    final_table = out[out.rindex("sweep finished"):]
    assert all(label in final_table for label in labels)

    _same_runs(tmp_path / "one", tmp_path / "two")


@pytest.mark.slow
def test_a_driver_without_the_token_mode_is_told_the_fix(cluster, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    began = time.time()
    code, out, err = _run_sweep(cluster, tmp_path / "r", params, cluster.driver_env(), timeout=300)
    assert code == 2, out[-2000:] + err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: the Ray cluster at {cluster.address} requires token authentication"), err[-3000:]
    assert "RAY_AUTH_MODE=token" in last and "~/.ray/auth_token" in last and "Traceback" not in err
    assert time.time() - began < 240
