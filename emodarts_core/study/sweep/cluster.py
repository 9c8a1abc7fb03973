"""The connection to Ray: a private local instance or an existing cluster, the token a
cluster may ask for, and the GPUs each task asks for.

A cluster whose head has a Ray token (~/.ray/auth_token: Ray >= 2.59 then turns token
authentication on) needs RAY_AUTH_MODE=token and that token on every node and on the
driver; a driver without them stops with `ClusterAuthError`, which names the fix
(docs/SWEEPS.md, "A cluster").
"""

from __future__ import annotations

import math
import os
import re

from emodarts_core.config import ConfigError


class ClusterAuthError(ConnectionError):
    """The Ray cluster at an address asks for a token this process did not send (or it sent
    another one). The message names the fix; docs/SWEEPS.md, "A cluster", has the recipe."""


def _auth_failure(exc: BaseException | None) -> str | None:
    """Ray's reason, if `exc` or one of its causes is a token-authentication failure.

    `ray.init(address=...)` wraps it in a ConnectionError ("Failed to connect to Ray
    cluster"); further down the chain is Ray's `AuthenticationError` (Ray >= 2.52) or a
    RuntimeError that quotes it ("... InvalidAuthToken: Authentication token is missing
    or incorrect").
    """
    import ray.exceptions

    auth_error = getattr(ray.exceptions, "AuthenticationError", ())
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    texts = [str(getattr(e, "message", "") or e) for e in chain if isinstance(e, auth_error)]
    texts += [str(e) for e in chain if "InvalidAuthToken" in str(e)]
    if not texts:
        return None
    quoted = re.search(r"(RPC error: )?InvalidAuthToken[^.\n]*", texts[0])
    return quoted.group(0) if quoted else texts[0].split(". ")[0]


def auth_error_message(address, reason: str = "") -> str:
    """What to do when the cluster at `address` refuses this process for want of a token.

    Ray (>= 2.59) turns token authentication on for `ray start --head` whenever the head
    finds a token (~/.ray/auth_token, which a local `ray.init` creates), but a process that
    joins or connects with an explicit address turns it on only with RAY_AUTH_MODE=token,
    and then needs the head's token (Ray's docs: ray-security/token-auth).
    """
    sent = ("sent a token the cluster does not accept, or found none" if
            os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else
            "sent no token (RAY_AUTH_MODE is not 'token' here)")
    return (f"the Ray cluster at {address} requires token authentication and this process {sent}. "
            "Fix: run with RAY_AUTH_MODE=token and the head node's token available on this machine: "
            "copy the head's ~/.ray/auth_token to ~/.ray/auth_token here (`ray get-auth-token` on the head "
            "prints it), or set RAY_AUTH_TOKEN_PATH=FILE or RAY_AUTH_TOKEN=TOKEN. Every node that joins with "
            "`ray start --address` needs the same, or its join fails with InvalidAuthToken "
            "(docs/SWEEPS.md, \"A cluster\")." + (f" Ray said: {reason}" if reason else ""))


def init_ray(address, num_workers):
    """Connect to Ray; returns (ray module, whether we started the connection).

    A cluster that refuses this process's token raises `ClusterAuthError`, which names the fix.
    """
    try:
        import ray
    except ImportError:
        raise ImportError("sweeps need Ray: pip install 'emodarts[sweep]' (or pip install ray)") from None
    if ray.is_initialized():
        return ray, False
    import logging

    if address is None:
        ray.init(address="local", num_cpus=num_workers, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as exc:
            reason = _auth_failure(exc)
            if reason is None:
                raise
            raise ClusterAuthError(auth_error_message(address, reason)) from exc
    return ray, True


def parse_gpus(gpus_per_task):
    """'auto' or a non-negative number of GPUs per task (checked before Ray starts)."""
    if gpus_per_task == "auto":
        return gpus_per_task
    try:
        gpus = float(gpus_per_task)
    except (TypeError, ValueError, OverflowError):
        gpus = -1.0
    if not math.isfinite(gpus) or gpus < 0:  # nan passed `gpus < 0` and failed once Ray had started
        raise ConfigError(f"gpus_per_task must be 'auto' or a number >= 0, got {gpus_per_task!r}")
    return gpus


def resolve_gpus(gpus_per_task, cluster_gpus: float) -> float:
    """GPUs each task asks for: 'auto' is one when the cluster has any; more than it has is refused."""
    if gpus_per_task == "auto":
        return 1.0 if cluster_gpus > 0 else 0.0
    if gpus_per_task > cluster_gpus:
        raise ConfigError(f"gpus_per_task={gpus_per_task:g} but the Ray cluster has {cluster_gpus:g} GPU(s)")
    return gpus_per_task

