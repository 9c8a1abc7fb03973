"""Every invalid configuration fails before any work, with a message listing what is valid.

Unknown dataset, scope, op, device and remedy names; input sizes the reductions cannot
divide; a fold that does not exist; a genotype that does not fit the search space (node
counts, scope, a SeqNN cell where there is none). "Before any work" means: no run
directory is created, and no features are computed.
"""

import json

import pytest

from data_fixtures import SMALL_CFG, make_emodb
from data_prep import load_fold
from data_prep.errors import DataError
from data_prep.prepare import prepare
from emodarts_core.space import genotypes
from emodarts_core.config import ConfigError, NetworkConfig, SearchConfig, TrainConfig, preset
from emodarts_core.training.device import resolve_device
from emodarts_core.space.genotypes import Genotype, GenotypeError
from emodarts_core.darts.search import run_search
from emodarts_core.space.search_space import SCOPES
from emodarts_core.training.train import run_retrain
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401


def _fails_before_work(tmp_path, match, net=None, s_cfg=None, t_cfg=None, spec=None):
    """Both loops refuse the configuration and leave no run directory behind."""
    net = net or tiny_net()
    with pytest.raises(ConfigError, match=match):
        run_search(tiny_fold(), net, s_cfg or search_cfg(), tmp_path / "search")
    with pytest.raises(ConfigError, match=match):
        run_retrain(tiny_fold(), spec or "cnn", net, t_cfg or train_cfg(), tmp_path / "retrain")
    assert not (tmp_path / "search").exists() and not (tmp_path / "retrain").exists()


# -- names ------------------------------------------------------------------------------
def test_unknown_dataset_lists_the_corpora(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'berlin'; valid names: .*emodb.*synthetic"):
        load_fold("berlin", tmp_path, 1)
    assert list(tmp_path.iterdir()) == []


def test_unknown_scope_lists_the_scopes(tmp_path):
    valid = ", ".join(SCOPES)
    with pytest.raises(ConfigError, match=f"unknown scope 'gru_only'; valid scopes: {valid}"):
        NetworkConfig(scope="gru_only").validate()
    with pytest.raises(ConfigError, match="unknown scope"):
        preset("smoke", scope="gru_only")
    net = NetworkConfig(input_size=(16, 16), scope="gru_only")  # not validated yet: the loops must
    _fails_before_work(tmp_path, "valid scopes", net=net)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="unknown preset 'huge'; valid presets: paper, small, smoke"):
        preset("huge")


@pytest.mark.parametrize("cell, op, valid", [("normal", "conv_9x9", "sep_conv_3x3"),
                                             ("seq", "gru_1", "lstm_att_1")])
def test_unknown_op_in_a_genotype_lists_the_ops(cell, op, valid):
    data = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "normal_concat": [2],
            "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]], "reduce_concat": [2],
            "seq": [["lstm_1", 0], ["rnn_1", 1]], "seq_concat": [2]}
    data[cell][0][0] = op
    with pytest.raises(GenotypeError, match=f"unknown op '{op}'; valid ops: .*{valid}"):
        genotypes.from_dict(data)
    with pytest.raises(GenotypeError, match="unknown op"):
        genotypes.from_json(json.dumps(data))


def test_unknown_device_lists_the_devices(tmp_path):
    for cfg in (SearchConfig(device="tpu"), TrainConfig(device="gpu")):
        with pytest.raises(ConfigError, match=r"unknown device '.*'; valid: auto, cpu, cuda or cuda:N"):
            cfg.validate()
    with pytest.raises(ConfigError, match="valid: auto, cpu, cuda"):
        resolve_device("mps0")
    _fails_before_work(tmp_path, "unknown device", s_cfg=search_cfg(device="tpu"), t_cfg=train_cfg(device="tpu"))


def test_cuda_that_is_not_there_fails_with_the_alternatives():
    import torch

    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="does not exist; .* CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ConfigError, match="CUDA is not available; use 'auto' or 'cpu'"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("field, value, match", [
    ("collapse_remedy", "darts_plus", "unknown collapse_remedy 'darts_plus'; valid: none, darts_minus, skip_cap"),
    ("skip_cap", -1, "skip_cap must be an integer >= 0"),
    ("skip_stop", 0, "skip_stop must be None"),
    ("darts_minus_beta", -0.5, "darts_minus_beta must be a number >= 0"),
])
def test_invalid_collapse_remedy_options(tmp_path, field, value, match):
    with pytest.raises(ConfigError, match=match):
        run_search(tiny_fold(), tiny_net(), search_cfg(**{field: value}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# -- sizes ------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, match", [
    (dict(input_size=(30, 32)),
     r"input F \(MFCC\) size 30 cannot be reduced .* 2 reduction cells \(needs a multiple of 4\)"),
    (dict(input_size=(32, 36), stem_stride=2), r"T \(frames\) size 36 .*stem stride 2.*multiple of 8"),
    (dict(input_size=(2, 2)), "needs a multiple of 4"),
])
def test_sizes_the_reductions_cannot_handle(tmp_path, overrides, match):
    net = NetworkConfig(**{**dict(cnn_cells=3, nodes=2, seq_cells=1, seq_nodes=2, seq_dim=8), **overrides})
    with pytest.raises(ConfigError, match=match):
        net.validate()
    _fails_before_work(tmp_path, "cannot be reduced", net=net)


def test_data_shape_or_channels_that_do_not_fit_the_network(tmp_path):
    _fails_before_work(tmp_path, r"expects \[N, 32, 32\]", net=tiny_net(input_size=(32, 32)))
    _fails_before_work(tmp_path, "in_channels=2; valid: in_channels=1", net=tiny_net(in_channels=2))


# -- folds ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("emodb") / "emodb", letters="WN", takes="a")


def test_nonexistent_fold_of_a_corpus_root_fails_before_features_are_computed(emodb_root):
    for fold in (6, 0, -1, "2", 1.0, True):
        with pytest.raises(DataError, match=f"fold {fold!r} does not exist for emodb"):
            load_fold("emodb", emodb_root, fold)
    with pytest.raises(DataError, match=r"valid folds: 1\.\.5"):
        load_fold("emodb", emodb_root, 6)
    assert not (emodb_root / ".emodarts_store").exists()


def test_nonexistent_fold_of_a_store_lists_the_folds(emodb_root, tmp_path):
    prepare("emodb", emodb_root, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    with pytest.raises(DataError, match=r"fold 7 does not exist for emodb; valid folds: 1\.\.5"):
        load_fold("emodb", tmp_path / "store", 7)


# -- genotypes against the search space ---------------------------------------------------
def _genotype(normal_nodes=2, seq_nodes=2, seq_op="lstm_1"):
    def cell(nodes, op):
        return [(op, j) for i in range(nodes) for j in (0, 1)]
    return Genotype(cell(normal_nodes, "sep_conv_3x3"), list(range(2, 2 + normal_nodes)),
                    cell(normal_nodes, "max_pool_3x3"), list(range(2, 2 + normal_nodes)),
                    cell(seq_nodes, seq_op) if seq_nodes else [], list(range(2, 2 + seq_nodes)))


@pytest.mark.parametrize("genotype, net, match", [
    (_genotype(normal_nodes=3), tiny_net(), "normal cell has 3 nodes, config nodes=2"),
    (_genotype(seq_nodes=3), tiny_net(), "seq cell has 3 nodes, config seq_nodes=2"),
    (_genotype(seq_op="rnn_att_1"), tiny_net(scope="lstm_only"),
     r"seq ops \['rnn_att_1'\] are outside scope 'lstm_only' \(skip_connect, lstm_1, lstm_2, lstm_3, lstm_4\)"),
    (_genotype(), tiny_net(seq_cells=0), "genotype has a SeqNN cell but config seq_cells=0"),
    (_genotype(seq_nodes=0), tiny_net(), "seq cell has 0 nodes, config seq_nodes=2"),
])
def test_genotype_that_does_not_match_the_search_space(tmp_path, genotype, net, match):
    with pytest.raises(GenotypeError, match=match):
        genotypes.check_compatible(genotype, net)
    with pytest.raises(ConfigError, match=match):
        run_retrain(tiny_fold(), genotype, net, train_cfg(), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    genotypes.check_compatible(_genotype(), tiny_net())  # the matching one passes


def test_a_folder_that_is_not_the_corpus_says_so_instead_of_listing_no_folds(tmp_path):
    """Before: 'fold 1 does not exist for emodb; valid folds: 1..0'."""
    from data_fixtures import write_wav

    write_wav(tmp_path / "other" / "wav" / "take_01.wav")
    write_wav(tmp_path / "other" / "interview.wav")
    with pytest.raises(DataError, match=r"no emodb utterances here, so there are no folds.*docs/CORPORA\.md") as info:
        load_fold("emodb", tmp_path / "other", 1)
    assert "1..0" not in str(info.value) and info.value.path == str(tmp_path / "other")
