"""The paper's published numbers (emoDARTS, IEEE Access 2024, Tables 3, 4, 5 and 7) as data.

Every row carries the dataset it was measured on, the model and the SeqNN scope, so a
reproduced table can be put beside the published one and a reader never confuses an
IEMOCAP figure with an EmoDB one. UA/WA are in percent; a number the paper does not give
is NaN. Parameter counts are plain integers (Table 3 gives thousands: 417K -> 417_000).

The tables are transcribed verbatim, including the paper's own inconsistency that
Table 4 prints IEMOCAP emoDARTS UA as 76.56 and Table 7 as 76.55.
"""

from __future__ import annotations

import math

import pandas as pd

NAN = math.nan

#: Columns of every table returned by `paper_table`.
COLUMNS = ("table", "dataset", "model", "scope", "cells", "params",
           "ua_mean", "ua_std", "wa_mean", "wa_std", "note")

#: Display names of the paper's datasets, keyed by the corpus names `data_prep` uses.
DATASET_TITLES = {"iemocap": "IEMOCAP", "msp_improv": "MSP-IMPROV", "msp_podcast": "MSP-Podcast",
                  "emodb": "EmoDB", "synthetic": "synthetic"}


def _row(table, dataset, model, scope, cells, params, ua, ua_std, wa, wa_std, note=""):
    return dict(zip(COLUMNS, (table, dataset, model, scope, cells, params, ua, ua_std, wa, wa_std, note)))


# Table 3: DARTS-generated CNN-only model vs the CNN baseline, IEMOCAP (improvised).
_TABLE3 = [
    _row(3, "iemocap", "cnn_darts", None, 4, 417_000, 69.36, 3.00, 72.55, 3.70),
    _row(3, "iemocap", "cnn_darts", None, 8, 428_000, 62.25, 6.74, 63.78, 6.83),
    _row(3, "iemocap", "cnn", None, None, 35_000, 50.04, 2.69, 51.01, 2.23),
    _row(3, "iemocap", "emotionnas_cnn", None, 3, 130_000, 57.3, NAN, 63.2, NAN,
         "Sun et al. [9], spectrogram branch; no std given"),
]

# Table 4 (and Figure 5): CNN+LSTM-attention baseline UA vs emoDARTS UA/WA per dataset.
_TABLE4 = [
    _row(4, "iemocap", "cnn_lstm_att", None, None, None, 53.55, 2.53, NAN, NAN),
    _row(4, "iemocap", "emodarts", "emodarts", 4, None, 76.56, 4.03, 78.03, 3.51),
    _row(4, "msp_improv", "cnn_lstm_att", None, None, None, 42.31, 1.34, NAN, NAN),
    _row(4, "msp_improv", "emodarts", "emodarts", 4, None, 65.63, 8.85, 65.32, 8.73),
    _row(4, "msp_podcast", "cnn_lstm_att", None, None, None, 54.48, 3.25, NAN, NAN),
    _row(4, "msp_podcast", "emodarts", "emodarts", 4, None, 61.15, 2.41, 62.33, 1.80),
]

# Table 5: related studies on the IEMOCAP improvised subset (no std for the other studies).
_TABLE5 = [
    _row(5, "iemocap", "emotionnas", None, None, None, 69.1, NAN, 72.1, NAN, "Sun H. et al. 2022 [9]"),
    _row(5, "iemocap", "cnn_rnn_att", None, None, None, 56.28, NAN, 68.87, NAN, "Wu X. et al. 2022 [10]"),
    _row(5, "iemocap", "emodarts", "emodarts", 4, None, 76.56, 4.03, 78.03, 3.51, "emoDARTS (the paper)"),
]

# Table 7 (and Figure 7): restricted SeqNN scopes per dataset, with derived-model parameters.
_T7 = {
    "iemocap": [("emodarts", 76.55, 4.03, 78.03, 3.51, 1_014_556),
                ("lstm_only", 67.42, 5.76, 67.78, 5.97, 2_939_372),
                ("lstm_att_only", 68.12, 7.12, 68.59, 6.62, 7_284_412),
                ("rnn_only", 70.42, 8.32, 72.07, 8.23, 356_492),
                ("rnn_att_only", 36.14, 10.97, 48.63, 6.56, 29_324)],
    "msp_improv": [("emodarts", 65.63, 8.85, 65.32, 8.73, 1_008_812),
                   ("lstm_only", 32.35, 1.93, 31.85, 0.98, 2_931_748),
                   ("lstm_att_only", 49.74, 10.08, 49.8, 10.15, 6_474_676),
                   ("rnn_only", 63.59, 7.88, 63.49, 7.95, 1_016_284),
                   ("rnn_att_only", 57.71, 12.61, 57.04, 12.14, 22_932)],
    "msp_podcast": [("emodarts", 61.15, 2.41, 62.33, 1.79, 1_835_604),
                    ("lstm_only", 53.12, 5.82, 54.48, 5.43, 2_943_852),
                    ("lstm_att_only", 53.11, 5.83, 55.07, 5.14, 7_284_932),
                    ("rnn_only", 59.16, 6.67, 60.72, 7.65, 706_068),
                    ("rnn_att_only", 59.29, 6.38, 60.25, 6.09, 2_844_420)],
}
_TABLE7 = [_row(7, ds, "emodarts", scope, 4, params, ua, ua_s, wa, wa_s)
           for ds, rows in _T7.items() for scope, ua, ua_s, wa, wa_s, params in rows]

_TABLES = {3: _TABLE3, 4: _TABLE4, 5: _TABLE5, 7: _TABLE7}


def paper_table(number: int) -> pd.DataFrame:
    """The paper's Table `number` (3, 4, 5 or 7) as a DataFrame with `COLUMNS`."""
    if number not in _TABLES:
        raise ValueError(f"the paper's published numbers are kept for tables {sorted(_TABLES)}, not {number!r}")
    frame = pd.DataFrame(_TABLES[number], columns=list(COLUMNS))
    frame["params"] = frame["params"].astype("Float64")
    return frame


__all__ = ["COLUMNS", "DATASET_TITLES", "paper_table"]
