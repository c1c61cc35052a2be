"""Models in a few lines: a user's similarity as a function, a Lagrangian by its value, the
Lyapunov facts as declared ("not known" until they are), and names the CLI, TOML model files
and saved runs resolve from a module."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from neurodyn import Monitor, Network, open_run, simulate
from neurodyn.analysis import lyapunov_check
from neurodyn.cli import main
from neurodyn.lagrangians import Lagrangian, UserLagrangian, make_lagrangian
from neurodyn.similarity import make_similarity, user_similarity

MEMORIES = torch.rand(20, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
MODULE = """
    import torch
    from neurodyn.lagrangians import UserLagrangian
    from neurodyn.similarity import user_similarity

    def soft_l1(memories, g):
        return -torch.sqrt((g[:, None, :] - memories[None]) ** 2 + 0.01).sum(-1)

    SOFT_L1 = user_similarity(soft_l1, name="usermodels:SOFT_L1", smooth=True)

    def quartic(x):
        return (x ** 4).sum(-1) / 4 + (x ** 2).sum(-1) / 2

    QUARTIC = UserLagrangian(quartic, name="usermodels:QUARTIC", convex=True, smooth=True, elementwise=True)
"""


@pytest.fixture
def usermodels(tmp_path, monkeypatch):
    (tmp_path / "usermodels.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield __import__("usermodels")
    sys.modules.pop("usermodels", None)


def soft_l1(memories, g):
    return -torch.sqrt((g[:, None, :] - memories[None]) ** 2 + 0.01).sum(-1)


def test_a_plain_function_is_a_similarity_whose_facts_are_not_known():
    net = Network(MEMORIES, similarity=soft_l1, separation="softmax:5")
    assert net.similarity.name == f"{__name__}:soft_l1"
    ds = simulate(net, MEMORIES[:3] * 0.7, 5.0, monitor=Monitor(("v", "energy"), n_times=11))
    assert ds.attrs["lyapunov_guaranteed"] == 0 and ds.attrs["lyapunov_known"] == 0
    report = lyapunov_check(ds)
    assert report.monotone and "not known" in report.verdict and "differentiable everywhere" in report.verdict
    declared = Network(MEMORIES, similarity=user_similarity(soft_l1, smooth=True), separation="softmax:5")
    assert declared.lyapunov_guaranteed
    # the gradient dynamics follow autograd of the score: the drive is -dE/dg
    g = MEMORIES[:2] * 0.5
    f = torch.softmax(5 * soft_l1(MEMORIES, g), -1)
    auto = torch.func.vjp(lambda x: soft_l1(MEMORIES, x), g)[1](f)[0]
    torch.testing.assert_close(declared.drive(g, f), auto)


def test_a_lagrangian_by_its_value_takes_its_activation_by_autograd():
    quartic = UserLagrangian(lambda x: (x ** 4).sum(-1) / 4, name="quartic", convex=True, smooth=True)
    x = torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(quartic.activation(x), x ** 3)
    assert make_lagrangian(lambda x: (x ** 2).sum(-1) / 2).convex is None


def test_an_undeclared_lagrangian_is_not_called_guaranteed():
    """A concave value Lagrangian that declares nothing used to be reported 'guaranteed by theory'."""

    class Concave(Lagrangian):
        name = "concave"

        def value(self, x):
            return -(x ** 2).sum(-1) / 2

    net = Network(MEMORIES, value_lagrangian=Concave())
    assert not net.lyapunov_guaranteed and not net.lyapunov_known()
    assert net.lyapunov_reason().startswith("not known: the model does not declare whether the value Lagrangian")
    Concave.convex = False
    assert not net.lyapunov_guaranteed and net.lyapunov_known()
    assert "value Lagrangian concave is not convex" in net.lyapunov_reason()


def test_import_names_serve_python_model_files_the_cli_and_reopened_runs(usermodels, tmp_path, capsys):
    net = Network(MEMORIES, similarity="usermodels:SOFT_L1", separation="softmax:5",
                  value_lagrangian="usermodels:QUARTIC")
    assert net.lyapunov_guaranteed and net.similarity is usermodels.SOFT_L1
    plain = make_similarity("usermodels:soft_l1")
    assert plain.name == "usermodels:soft_l1" and plain.smooth is None
    out = tmp_path / "r.nc"
    model = tmp_path / "model.toml"
    model.write_text('[model]\nsimilarity = "usermodels:SOFT_L1"\nseparation = "softmax:20"\n')
    for options in (["--similarity", "usermodels:SOFT_L1", "--value", "usermodels:QUARTIC"],
                    ["--model-file", str(model)]):
        assert main(["recall", "--n-memories", "10", "--duration", "2", "--no-figure", "--overwrite",
                     "--output", str(out), *options]) == 0
        assert "guaranteed by theory" in capsys.readouterr().out
        ds, back = open_run(out)
        assert back.similarity is usermodels.SOFT_L1 and ds.attrs["model_similarity"] == "usermodels:SOFT_L1"


def test_bad_names_say_what_is_known_and_what_could_not_be_imported():
    with pytest.raises(ValueError, match="unknown similarity 'manhatan'; known: .* or a user's as 'module:attribute'"):
        make_similarity("manhatan")
    with pytest.raises(ValueError, match="unknown similarity 'nomodule' .* cannot import the similarity "
                                         "'nomodule:f': No module named 'nomodule'"):
        make_similarity("nomodule:f")
    with pytest.raises(ValueError, match="cannot import the Lagrangian 'neurodyn.lagrangians:nothing'"):
        make_lagrangian("neurodyn.lagrangians:nothing")
    with pytest.raises(ValueError, match="names a float, not a Lagrangian"):
        make_lagrangian("neurodyn.network.theory:MANHATTAN_SMOOTHING")
    with pytest.raises(ValueError, match="a similarity is a name, a Similarity or a function"):
        make_similarity(3)  # type: ignore[arg-type]
