"""The emoDARTS search space: candidate operations and the restricted scopes of paper Table 6.

`none` comes first in every primitive list so that genotype parsing can skip it by index,
and `skip_connect` and `none` stay in every scope (paper section 5.C).
"""

from __future__ import annotations

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

LSTM_OPS = ("lstm_1", "lstm_2", "lstm_3", "lstm_4")
LSTM_ATT_OPS = ("lstm_att_1", "lstm_att_2")
RNN_OPS = ("rnn_1", "rnn_2", "rnn_3", "rnn_4")
RNN_ATT_OPS = ("rnn_att_1", "rnn_att_2")
_ALWAYS = ("none", "skip_connect")

SEQ_PRIMITIVES: tuple[str, ...] = _ALWAYS + LSTM_OPS + LSTM_ATT_OPS + RNN_OPS + RNN_ATT_OPS

SCOPES: dict[str, tuple[str, ...]] = {
    "emodarts": SEQ_PRIMITIVES,
    "lstm_only": _ALWAYS + LSTM_OPS,
    "lstm_att_only": _ALWAYS + LSTM_ATT_OPS,
    "rnn_only": _ALWAYS + RNN_OPS,
    "rnn_att_only": _ALWAYS + RNN_ATT_OPS,
}

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
