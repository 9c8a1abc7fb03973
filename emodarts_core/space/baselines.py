"""The paper's baselines designed without DARTS (section 4.B, Figure 4).

- `cnn`: Conv2d(k 2, s 2, p 2) -> ReLU -> MaxPool(2, 2) -> Dropout 0.3 -> Dense -> ReLU ->
  Dense(n_classes).  The paper gives only "about 35 K parameters"; 2 conv channels and a
  16-unit hidden dense layer give 34 942 at 128 x 128 (the flattened 2 x 33 x 33 map
  dominates), so those are the widths used.
- `cnn_lstm`: the same convolution and pooling, then the pooled map read as a sequence
  over its time axis [B, T', C*F'] through a bidirectional LSTM of 128 units, the mean
  over time, Dropout 0.3, Dense -> ReLU -> Dense(n_classes).
- `cnn_lstm_att`: as `cnn_lstm`, but attention pooling over the LSTM outputs
  (score_t = v^T tanh(W h_t), softmax over the time steps of one utterance) replaces
  the mean.

The softmax is left to the loss (cross-entropy on logits).  Every sample is processed on
its own: nothing mixes samples of a batch.
"""

from __future__ import annotations

import torch
import torch.nn as nn

BASELINES = ("cnn", "cnn_lstm", "cnn_lstm_att")
CONV_CHANNELS = 2
HIDDEN = 16
LSTM_UNITS = 128
DROPOUT = 0.3


def _front(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, CONV_CHANNELS, kernel_size=2, stride=2, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
    )


def _pooled_size(size: int) -> int:
    return ((size + 2 * 2 - 2) // 2 + 1) // 2


def _classifier_head(n_in: int, n_classes: int) -> nn.Sequential:
    """The dense -> ReLU -> dense classifier both baselines end in."""
    return nn.Sequential(nn.Linear(n_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_classes))


class CNNBaseline(nn.Module):
    """Conv -> ReLU -> max-pool -> dropout -> dense -> dense."""

    def __init__(self, n_classes: int, input_size: tuple[int, int], in_channels: int = 1):
        super().__init__()
        self.front = _front(in_channels)
        self.dropout = nn.Dropout(DROPOUT)
        n_flat = CONV_CHANNELS * _pooled_size(input_size[0]) * _pooled_size(input_size[1])
        self.head = _classifier_head(n_flat, n_classes)

    def forward(self, x):
        return self.head(self.dropout(self.front(x).flatten(1)))


class AttentionPool(nn.Module):
    """Additive attention pooling over the time steps of each sequence: [B, T, h] -> [B, h]."""

    def __init__(self, h: int):
        super().__init__()
        self.proj = nn.Linear(h, h)
        self.score = nn.Linear(h, 1, bias=False)

    def forward(self, h):
        a = torch.softmax(self.score(torch.tanh(self.proj(h))), dim=1)  # [B, T, 1]
        return (a * h).sum(dim=1)


class CNNLSTMBaseline(nn.Module):
    """Conv -> ReLU -> max-pool -> dropout -> BiLSTM over time -> mean or attention -> dense -> dense."""

    def __init__(self, n_classes: int, input_size: tuple[int, int], attention: bool, in_channels: int = 1):
        super().__init__()
        self.front = _front(in_channels)
        self.dropout = nn.Dropout(DROPOUT)
        self.lstm = nn.LSTM(CONV_CHANNELS * _pooled_size(input_size[0]), LSTM_UNITS,
                            batch_first=True, bidirectional=True)
        self.pool = AttentionPool(2 * LSTM_UNITS) if attention else None
        self.head = _classifier_head(2 * LSTM_UNITS, n_classes)

    def forward(self, x):
        m = self.dropout(self.front(x))  # [B, C, F', T']
        B, C, Fq, T = m.shape
        h = self.lstm(m.permute(0, 3, 1, 2).reshape(B, T, C * Fq))[0]
        return self.head(self.pool(h) if self.pool is not None else h.mean(dim=1))


def build_baseline(name: str, n_classes: int = 4, input_size: tuple[int, int] = (128, 128),
                   in_channels: int = 1) -> nn.Module:
    """One of `cnn`, `cnn_lstm`, `cnn_lstm_att` for inputs [B, in_channels, F, T]."""
    if name == "cnn":
        return CNNBaseline(n_classes, input_size, in_channels)
    if name in ("cnn_lstm", "cnn_lstm_att"):
        return CNNLSTMBaseline(n_classes, input_size, name == "cnn_lstm_att", in_channels)
    raise ValueError(f"unknown baseline {name!r}; valid baselines: {', '.join(BASELINES)}")


__all__ = ["BASELINES", "build_baseline", "CNNBaseline", "CNNLSTMBaseline", "AttentionPool"]
