"""Sweeps over datasets x folds x seeds x scopes (search -> retrain), baselines and
random-architecture controls (retrain), under one or both retraining protocols, on Ray.

Each (dataset, fold, seed, scope) search -> retrain chain, each (dataset, fold, seed,
baseline) retraining and each control is one Ray task; a task retrains its model under
every requested protocol (`emodarts_core.training.protocols`: ``paper``, ``full``), so a
search is shared by both. The controls (Li & Talwalkar 2019; Yang et al. 2020) draw
from the same space as the search (`controls.scope`, default the full emoDARTS scope);
the random search's candidate count is set so that its compute matches the search's
(results/emodb/README.md gives the measurement). Without `address` a private local Ray
instance is started; with `address` an existing cluster is used (`"auto"` on a cluster
node, `"ray://head:10001"` from elsewhere, which needs `ray[client]`). Every node must
see `results_dir` and the data directories at the same paths (a shared file system) and
have emodarts installed.

The package follows a sweep's life, one module a step:

- `parameters`: the settings every task shares (`load_params`, `SweepParams`, `ControlConfig`);
- `plan`: the tasks (`plan_tasks`, `Task`) and the lists of scopes, baselines and controls;
- `task`: one task as a Ray worker runs it (`execute_task`, `MODEL_SOURCES`);
- `status`: each task's status, the progress table, the report and the manifest;
- `cluster`: the connection to Ray and its token authentication (`ClusterAuthError`);
- `driver`: `run_sweep`, which submits the tasks and follows them;
- `cli`: `python -m emodarts_core.sweep`.

Results folder layout (what `emodarts_core.study.results` reads; each retraining's
config.json also names its protocol, model, scope, fold and seed under "study"):

    <results>/sweep.json                                        the manifest (`status`)
    <results>/<dataset>/<scope>/fold<k>/seed<s>/search/         run_search's run directory
    <results>/<dataset>/<scope>/fold<k>/seed<s>/retrain-<p>/    its genotype retrained under protocol p
    <results>/<dataset>/<baseline>/fold<k>/seed<s>/retrain-<p>/ a baseline's retraining
    <results>/<dataset>/random/fold<k>/seed<s>/arch<i>/         genotype.json, retrain-<p>/
    <results>/<dataset>/random_search/fold<k>/seed<s>/          candidates/arch<j>/, choice.json,
                                                                genotype.json, retrain-<p>/
"""

from .cli import main
from .cluster import ClusterAuthError, auth_error_message
from .driver import run_sweep
from .parameters import CNN_DARTS, SEARCH_SCOPES, ControlConfig, SweepParams, load_params, params_differences
from .plan import BASELINE_NAMES, CONTROLS, Task, plan_tasks, stage_state
from .status import MANIFEST, STATUSES, SweepReport, TaskStatus, format_table, read_manifest
from .task import MODEL_SOURCES, check_input_size, execute_task, node_label

__all__ = ["BASELINE_NAMES", "CNN_DARTS", "CONTROLS", "ClusterAuthError", "ControlConfig", "MANIFEST", "MODEL_SOURCES",
           "SEARCH_SCOPES", "STATUSES", "SweepParams", "SweepReport", "Task", "TaskStatus", "auth_error_message",
           "check_input_size", "execute_task", "format_table", "load_params", "main", "node_label",
           "params_differences", "plan_tasks", "read_manifest", "run_sweep", "stage_state"]
