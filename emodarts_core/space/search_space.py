"""The emoDARTS search space: candidate operations and the restricted scopes of paper Table 6.

`none` comes first in every primitive list so that genotype parsing can skip it by index,
and `skip_connect` and `none` stay in every scope (paper section 5.C). The scopes are a
setting of the network's configuration (`NetworkConfig.scope`), so `emodarts_core.config`
defines them (`SCOPES`) and validates the setting; this module reads them from there.
"""

from __future__ import annotations

from emodarts_core.config import SCOPES

CNN_PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "conv_7x1_1x7",
)

SEQ_PRIMITIVES: tuple[str, ...] = SCOPES["emodarts"]

SCOPE_TITLES: dict[str, str] = {
    "emodarts": "emoDARTS",
    "lstm_only": "LSTM Only",
    "lstm_att_only": "LSTM-Att. Only",
    "rnn_only": "RNN Only",
    "rnn_att_only": "RNN-Att. Only",
}


def seq_primitives(scope: str) -> tuple[str, ...]:
    """The SeqNN candidate operations allowed in `scope` (paper Table 6)."""
    try:
        return SCOPES[scope]
    except KeyError:
        raise ValueError(f"unknown scope {scope!r}; valid scopes: {', '.join(SCOPES)}") from None
