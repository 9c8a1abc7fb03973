"""Genotype parsing, JSON round trip, validation errors and config compatibility."""

import numpy as np
import pytest

from emodarts_core.config import preset
from emodarts_core.space.genotypes import (Genotype, GenotypeError, check_compatible, from_json, load, parse,
                                     save, to_json)
from emodarts_core.space.search_space import CNN_PRIMITIVES, seq_primitives

GENO = Genotype(
    normal=[("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("conv_7x1_1x7", 0)],
    normal_concat=[2, 3],
    reduce=[("max_pool_3x3", 0), ("avg_pool_3x3", 1), ("skip_connect", 2), ("sep_conv_5x5", 1)],
    reduce_concat=[2, 3],
    seq=[("lstm_att_1", 0), ("rnn_2", 1), ("skip_connect", 2), ("lstm_4", 0)],
    seq_concat=[2, 3],
)


def test_parse_never_selects_none_even_when_it_dominates():
    rng = np.random.default_rng(0)
    probs = rng.random((9, len(CNN_PRIMITIVES))) * 0.1  # 3 nodes: 2 + 3 + 4 edges
    probs[:, CNN_PRIMITIVES.index("none")] = 10.0
    probs[4, CNN_PRIMITIVES.index("sep_conv_5x5")] = 1.0  # node 1's strongest edge: input 2
    edges, concat = parse(probs, CNN_PRIMITIVES)
    assert len(edges) == 6 and concat == [2, 3, 4]
    assert all(op != "none" for op, _ in edges)
    assert ("sep_conv_5x5", 2) in edges[2:4]
    assert [src for _, src in edges[:2]] == [0, 1]
    assert all(0 <= src < 2 + i // 2 for i, (_, src) in enumerate(edges))


def test_parse_rejects_wrong_shape():
    with pytest.raises(GenotypeError, match="rows"):
        parse(np.ones((4, len(CNN_PRIMITIVES))), CNN_PRIMITIVES)


def test_json_round_trip(tmp_path):
    assert from_json(to_json(GENO)) == GENO
    save(GENO, tmp_path / "g.json")
    assert load(tmp_path / "g.json") == GENO


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"normal": []}', "missing"),
    (to_json(GENO).replace("sep_conv_3x3", "__import__('os')"), "valid ops: .*sep_conv_3x3"),
    (to_json(GENO).replace('"lstm_4"', '"conv_9x9"'), "unknown op 'conv_9x9'"),
    (to_json(GENO).replace('["rnn_2", 1]', '["rnn_2", 7]'), "node 0 can read inputs 0..1, got 7"),
])
def test_malformed_genotype_gives_clear_error(text, message):
    with pytest.raises(GenotypeError, match=message):
        from_json(text)


def test_compatibility_with_config():
    check_compatible(GENO, preset("smoke", seq_nodes=2))
    with pytest.raises(GenotypeError, match="nodes=3"):
        check_compatible(GENO, preset("smoke", nodes=3))
    with pytest.raises(GenotypeError, match="outside scope 'rnn_only'"):
        check_compatible(GENO, preset("smoke", scope="rnn_only"))
    with pytest.raises(GenotypeError, match="seq_cells=0"):
        check_compatible(GENO, preset("smoke", seq_cells=0))


def test_seq_parse_respects_scope():
    prims = seq_primitives("lstm_only")
    edges, _ = parse(np.random.default_rng(1).random((5, len(prims))), prims)
    assert {op for op, _ in edges} <= set(prims) - {"none"}


def test_pt_darts_text_form_round_trips_without_eval(tmp_path):
    from emodarts_core.config import preset
    from emodarts_core.space.genotypes import from_text, to_text
    from emodarts_core.space.sampling import random_genotypes

    for g in random_genotypes(preset("small"), 5, seed=0) + random_genotypes(preset("small", seq_cells=0), 2, seed=1):
        text = to_text(g)
        assert text.startswith("Genotype(normal=[[(") and "normal_concat=range(2, 5)" in text
        assert from_text(text) == g


def test_pt_darts_own_genotype_text_reads_and_code_is_refused():
    import pytest

    from emodarts_core.space.genotypes import GenotypeError, from_text

    darts_v2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
                "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
                "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
                "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
                "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
    g = from_text(darts_v2)
    assert len(g.normal) == 8 and g.reduce_concat == [2, 3, 4, 5] and g.seq == []
    for bad in ("__import__('os').system('true')", "Genotype(normal=open('x'), normal_concat=[2], "
                "reduce=[], reduce_concat=[2])", "Genotype(*x)"):
        with pytest.raises(GenotypeError):
            from_text(bad)
