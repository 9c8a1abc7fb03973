"""tools/profile_search_step.py: it counts the calls of the search step without changing the
step, and names where they come from (docs/PERFORMANCE.md, "The step's calls")."""

import pytest
import torch

from emodarts_core.config import SearchConfig, preset
from emodarts_core.fast.recurrence import stacked_tanh_rnn
from loop_helpers import single_thread  # noqa: F401 (fixture)
from tool_modules import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("profile_search_step")


def _smoke():
    return preset("smoke", input_size=(16, 16)), SearchConfig(batch_size=4, order=1).validate()


def test_a_counted_step_is_the_step(tool):
    """The counter passes every call through: two networks built alike, two steps each (the
    same dropout draws), one of them counted, end with the same weights and α; and a step's
    count does not change from the second step on."""
    net_cfg, search_cfg = _smoke()
    (plain_model, plain_step), (counted_model, counted_step) = (tool._step_of(net_cfg, search_cfg) for _ in range(2))
    counts = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        plain_step()
        torch.manual_seed(seed)
        counts.append(sum(tool.count_calls(counted_step).values()))
        for a, b in zip(plain_model.parameters(), counted_model.parameters(), strict=True):
            assert torch.equal(a, b)
    assert counts[0] > 1000 and counts[1] == sum(tool.count_calls(counted_step).values())


def test_calls_are_named_by_where_they_come_from(tool):
    """A forward call made by the fast form's recurrence is named by its line; the backward
    of torch's own operators by the engine; a custom Function's backward by its own line."""
    torch.manual_seed(0)
    rnns = [torch.nn.RNN(4, 4, num_layers=k, batch_first=True) for k in (1, 2)]
    x = torch.randn(2, 3, 4, requires_grad=True)

    def forward_and_backward():
        sum(h.sum() for h in stacked_tanh_rnn(x, rnns)).backward()

    sources = {source for (_, source) in tool.count_calls(forward_and_backward)}
    assert any(s.startswith("emodarts_core/fast/recurrence.py:") and s.endswith(" stacked_tanh_rnn") for s in sources)
    assert any(s.startswith("emodarts_core/fast/recurrence.py:") and s.endswith(" forward") for s in sources)
    assert any(s.startswith("emodarts_core/fast/recurrence.py:") and s.endswith(" backward") for s in sources)
    assert tool.AUTOGRAD_ENGINE in sources


def test_the_report_of_a_smoke_step(tool):
    """The figures the tool prints, on the smoke network: a network without its SeqNN cells
    makes fewer calls, the per-call time is the step's time over its calls."""
    net_cfg, search_cfg = _smoke()
    out = tool.profile_step(net_cfg, search_cfg, steps=2, warmup=1, top=5, floor=False)
    assert 0 < out["aten_calls_without_seq_cells"] < out["aten_calls"]
    assert out["microseconds_per_call"] == pytest.approx(1e6 * out["cpu_seconds_per_step"] / out["aten_calls"])
    assert len(out["top_calls"]) == 5 and sum(r["calls"] for r in out["top_sources"]) <= out["aten_calls"]
    text = tool.report(out)
    assert "aten calls per step" in text and "without the SeqNN cells" in text
