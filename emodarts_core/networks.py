"""Build a network in the form the fast-path switch chooses, once, when it is built.

`search_network(net_cfg)` and `derived_network(genotype, net_cfg)` return the fast form
(`emodarts_core.fast.networks`) while `emodarts_core.fast.enabled()` is on, and the plain
PyTorch form (`emodarts_core.space`) otherwise, the way timm's layers read
`use_fused_attn()` when they are made. The switch is `EMODARTS_FAST=0` in the environment,
`fast.set_enabled(False)`, or `with fast.disabled(): ...` around the build. Both forms
have the same parameters under the same names, so a state dict (a checkpoint, a
`model.pt`) of one loads into the other.
"""

from __future__ import annotations

from emodarts_core import fast
from emodarts_core.config import NetworkConfig
from emodarts_core.fast.networks import FastDerivedNetwork, FastSearchNetwork
from emodarts_core.space.derived import DerivedNetwork
from emodarts_core.space.genotypes import Genotype
from emodarts_core.space.search_network import SearchNetwork


def search_network(net_cfg: NetworkConfig, *, share_pools: bool = True) -> SearchNetwork:
    """The search supernet of `net_cfg` (paper Fig. 2), fast or plain by the switch.

    `share_pools=False` makes every edge pool its own input, as a checkpointed edge does,
    so that the memory estimator (`darts.memory`) can count each edge's activations as
    checkpointing would recompute them; the plain form always pools per edge.
    """
    if fast.enabled():
        return FastSearchNetwork(net_cfg, share_pools=share_pools)
    return SearchNetwork(net_cfg)


def derived_network(genotype: Genotype, net_cfg: NetworkConfig) -> DerivedNetwork:
    """The network `genotype` describes at the shape of `net_cfg`, fast or plain by the switch."""
    return (FastDerivedNetwork if fast.enabled() else DerivedNetwork)(genotype, net_cfg)


__all__ = ["derived_network", "search_network"]
