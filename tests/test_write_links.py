"""Files the suite writes into a results folder replace a planted symbolic link instead
of writing through it to the file it points at (the same safe writer everywhere:
`data_prep.store.write_atomic`, a temporary file renamed over the target).

The run directory's own files are checked in test_rundir_links.py; here the figures a
notebook saves (`plots.save_figure`) and a genotype saved by `space.genotypes.save`.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from emodarts_core import plots  # noqa: E402
from emodarts_core.space import genotypes  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX links")

GENOTYPE = genotypes.Genotype(normal=[("sep_conv_3x3", 0), ("skip_connect", 1)], normal_concat=[2],
                              reduce=[("max_pool_3x3", 0), ("avg_pool_3x3", 1)], reduce_concat=[2])


def _victim(tmp_path):
    victim = tmp_path / "elsewhere" / "thesis.tex"
    victim.parent.mkdir()
    victim.write_text("the user's own file\n")
    return victim


@pytest.mark.parametrize("name", ["alpha.png", "alpha.pdf", "alpha"])
def test_a_linked_figure_is_replaced_and_its_target_untouched(tmp_path, name):
    victim = _victim(tmp_path)
    figures = tmp_path / "results" / "figures"
    figures.mkdir(parents=True)
    (figures / name).symlink_to(victim)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    plots.save_figure(fig, figures / name)
    plt.close(fig)
    assert victim.read_text() == "the user's own file\n"
    written = figures / name
    assert not written.is_symlink() and written.stat().st_size > 0
    magic = {"alpha.pdf": b"%PDF"}.get(name, b"\x89PNG")
    assert written.read_bytes().startswith(magic)
    assert sorted(p.name for p in figures.iterdir()) == [name]  # no temporary file left


def test_save_figure_creates_the_folder_and_writes_nothing_without_a_path(tmp_path):
    fig, _ = plt.subplots()
    assert plots.save_figure(fig, None) is fig
    plots.save_figure(fig, tmp_path / "new" / "f.png")
    plt.close(fig)
    assert (tmp_path / "new" / "f.png").read_bytes().startswith(b"\x89PNG")


def test_a_linked_genotype_file_is_replaced_and_its_target_untouched(tmp_path):
    victim = _victim(tmp_path)
    link = tmp_path / "genotype.json"
    link.symlink_to(victim)
    genotypes.save(GENOTYPE, link)
    assert victim.read_text() == "the user's own file\n"
    assert not link.is_symlink() and genotypes.load(link) == GENOTYPE
