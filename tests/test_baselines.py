"""The paper's baselines without DARTS."""

import pytest
import torch

from emodarts_core.space.baselines import BASELINES, build_baseline


def test_cnn_has_about_35k_parameters():
    n = sum(p.numel() for p in build_baseline("cnn").parameters())
    assert 33_000 <= n <= 37_000


@pytest.mark.parametrize("name", BASELINES)
def test_logits_and_batch_independence(name):
    torch.manual_seed(0)
    net = build_baseline(name, n_classes=4, input_size=(64, 48)).eval()
    x = torch.randn(3, 1, 64, 48)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (3, 4)
        torch.testing.assert_close(out[1:2], net(x[1:2]), rtol=1e-5, atol=1e-5)


def test_unknown_baseline_lists_valid_names():
    with pytest.raises(ValueError, match="cnn_lstm_att"):
        build_baseline("resnet")
