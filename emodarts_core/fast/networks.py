"""The search supernet and the derived network in their fast form.

`FastSearchNetwork` and `FastDerivedNetwork` are `space.search_network.SearchNetwork` and
`space.derived.DerivedNetwork` with every op and cell turned into its fast form
(`fast.ops.to_fast`, `fast/cells.py`), and the stem's output put channels-last
(`fast.conv.ChannelsLast`), the layout in which torch's CPU depthwise convolutions run
several times faster (docs/PERFORMANCE.md). The parameters and buffers, and their
names, are those of the plain form, so one state dict loads into either, and the two
compute the same values, gradients and BatchNorm statistics to float rounding
(tests/test_fast_switch.py). `emodarts_core.networks` builds the form that the switch
(`emodarts_core.fast.enabled()`) chooses.
"""

from __future__ import annotations

from emodarts_core.config import NetworkConfig
from emodarts_core.fast.cells import CELL_CLASSES
from emodarts_core.fast.conv import ChannelsLast
from emodarts_core.fast.ops import to_fast
from emodarts_core.space.derived import DerivedNetwork
from emodarts_core.space.genotypes import Genotype
from emodarts_core.space.search_network import SearchNetwork


class FastSearchNetwork(SearchNetwork):
    """`SearchNetwork(net_cfg)` in its fast form. With `share_pools` (the default) the pools
    of the edges leaving a state run once for them all (`fast.cells.FastSearchCell`);
    without, each edge pools its input itself, as a checkpointed edge does."""

    def __init__(self, net_cfg: NetworkConfig, share_pools: bool = True):
        super().__init__(net_cfg)
        to_fast(self, CELL_CLASSES)
        self.stem.append(ChannelsLast())
        for cell in self.cells:
            if hasattr(cell, "share_pools"):
                cell.share_pools = share_pools


class FastDerivedNetwork(DerivedNetwork):
    """`DerivedNetwork(genotype, net_cfg)` in its fast form."""

    def __init__(self, genotype: Genotype, net_cfg: NetworkConfig):
        super().__init__(genotype, net_cfg)
        to_fast(self)
        self.stem.append(ChannelsLast())


__all__ = ["FastDerivedNetwork", "FastSearchNetwork"]
