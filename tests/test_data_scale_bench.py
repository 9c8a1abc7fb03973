"""tools/scale_bench.py: its generated corpus is MSP-Podcast's release layout, and its fit
is a least-squares line (the docs/DATA.md table's 150 k row)."""

import numpy as np

from data_prep.corpora import scan_corpus
from tool_modules import load_tool

scale_bench = load_tool("scale_bench")


def test_the_generated_corpus_is_read_by_the_msp_podcast_reader(tmp_path):
    root = scale_bench.write_corpus(tmp_path / "corpus", 300)
    assert sorted(p.name for p in root.iterdir()) == ["Audios", "Labels", "corpus.json"]
    scan = scan_corpus("msp_podcast", root)
    assert len(scan.utterances) == 300 and not scan.skipped
    assert len({u.speaker for u in scan.utterances}) == 6 and {u.gender for u in scan.utterances} == {"M", "F"}
    assert {u.label for u in scan.utterances} == {"anger", "happiness", "neutral", "sadness"}
    mtime = (root / "Audios" / "MSP-PODCAST_0001_000001.wav").stat().st_mtime_ns
    scale_bench.write_corpus(root, 300)  # complete: kept as it is
    assert (root / "Audios" / "MSP-PODCAST_0001_000001.wav").stat().st_mtime_ns == mtime


def test_the_fit_is_the_least_squares_line_through_the_measured_sizes():
    xs, ys = [2000, 20000, 60000], [10.0, 46.0, 121.0]
    a, b = np.polyfit(xs, ys, 1)
    assert scale_bench._fit(xs, ys, 150000) == np.float64(a * 150000 + b)
    assert abs(scale_bench._fit(xs[:2], ys[:2], 150000) - (10.0 + 36.0 / 18000 * 148000)) < 1e-9
    row = {"n": 2000, "build_s": 100.0, "build_main": 2 ** 28, "build_tree": 2 ** 29, "store": 2 ** 27,
           "disk": 2 ** 27, "load_s": 0.5, "load_held": 2 ** 20, "load_peak": 2 ** 21, "load_store_s": 0.25,
           "load_store_held": 2 ** 20, "load_store_peak": 2 ** 21, "search_hwm": 2 ** 29}
    text = scale_bench.table([row, {**row, "n": 20000, "build_s": 1000.0}], [150000])
    lines = text.splitlines()
    assert lines[2].startswith("| 2 000 | 100 | 50.0 | 256 / 512 | 128 | 1.00 |")
    assert lines[-1].startswith("| (fit) 150 000 | 7500 | 50.0 |")
