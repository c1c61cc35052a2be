"""UHN appendix B (fig. 6): heteroassociative vs autoassociative capacity.

Heteroassociation recalls only the bottom half of each stored image (the projection holds the
bottom halves); autoassociation recalls the whole image; the queries are the same corrupted
whole images. MCHN: normalized dot product, max separation, CIFAR-10, Gaussian sigma = 0.3. HN:
classical Hopfield net (dot product, identity separation, sign read-out) on bipolar MNIST with
Gaussian sigma = 1e-7, as the authors' code runs it (UHN-PROTOCOL.md). One-step retrieval.
"""

from neurodyn.jobs.experiment import Experiment, markdown_table, mean_std, plot_curves

N_MEMORIES = [2, 5, 10, 20, 30, 50, 100, 200, 300, 500, 700, 1000]


def figure(ds):
    return plot_curves(ds, "retrieval_rate", "n_memories", "projection", panel="network", logx=True,
                       ylabel="fraction retrieved")


def report(ds):
    rows = []
    for network in ds["network"].values:
        for n in ds["n_memories"].values:
            cell = ds["retrieval_rate"].sel(network=network, n_memories=n)
            auto, hetero = cell.sel(projection="none"), cell.sel(projection="bottom_half")
            rows.append([f"{ds['model'].values[network]} ({ds['data'].values[network]})", int(n),
                         mean_std(auto, 100), mean_std(hetero, 100),
                         f"{100 * float((hetero - auto).mean()):+.1f}"])
    return (f"Percentage retrieved (mean ± std over {ds.sizes['seed']} seeds); hetero recalls the bottom half.\n\n"
            + markdown_table(["network", "N", "auto", "hetero", "hetero - auto"], rows)
            + "\n\nPaper (appendix B): auto- and heteroassociative capacities are statistically "
              "identical for both the MCHN and the HN; the HN's is very poor.")


EXPERIMENT = Experiment(
    name="uhn-hetero",
    title="UHN appendix B: heteroassociative vs autoassociative capacity",
    config={
        "sweep": {"function": "neurodyn.jobs.protocols:one_step_point"},
        "grid": {"projection": ["none", "bottom_half"], "n_memories": N_MEMORIES, "seed": [0, 1, 2, 3, 4]},
        "zip": {"network": {"model": ["uhn-dot", "hn"], "separation": ["max", "identity"],
                            "data": ["cifar10", "mnist"],
                            "corruption": ["gaussian:0.3,absolute=true", "gaussian:1e-7,absolute=true"]}},
    },
    quick={"grid": {"n_memories": [2, 10, 100, 300], "seed": [0, 1, 2]}},
    figure=figure,
    report=report,
    cost="240 points; measured 33 s on 2 local workers",
)
