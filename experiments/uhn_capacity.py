"""UHN fig. 2: retrieval capacity vs number of stored images for every similarity function.

Two settings, as UHN-PROTOCOL.md explains: ``code`` is what the authors' code runs (queries with
Gaussian noise sigma = 0.5 reflected into [0, 1], max separation); ``caption`` is what the
figure's caption says (top half masked, softmax with beta = 100 on the normalized scores).
One-step retrieval, sse <= 50 on every data set, as the paper states it.
"""

from neurodyn.jobs.experiment import Experiment, markdown_table, mean_std, plot_curves

MODELS = ["uhn-manhattan", "uhn-euclidean", "uhn-dot", "uhn-kl", "uhn-reverse_kl", "uhn-js"]
N_MEMORIES = [2, 5, 10, 20, 50, 100, 200, 300, 500, 700, 1000]


def figure(ds):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(ds.sizes["setting"], ds.sizes["data"], squeeze=False,
                             figsize=(4.2 * ds.sizes["data"], 3.4 * ds.sizes["setting"]))
    for row, setting in zip(axes, ds["setting"].values):
        plot_curves(ds.sel(setting=setting), "retrieval_rate", "n_memories", "model", panel="data", logx=True,
                    ylabel="fraction retrieved", axes=row, floor="mean_pattern_rate",
                    title=f"{ds['corruption'].values[setting]}, {ds['separation'].values[setting]}")
    return fig


def report(ds):
    big = ds.sel(n_memories=ds["n_memories"].max())
    rows = []
    for setting in ds["setting"].values:
        for data in ds["data"].values:
            cell = big.sel(setting=setting, data=data)
            ranked = sorted(ds["model"].values, key=lambda m: -float(cell["retrieval_rate"].sel(model=m).mean()))
            rows.append([f"{ds['corruption'].values[setting]}, {ds['separation'].values[setting]}", data,
                         *[mean_std(cell["retrieval_rate"].sel(model=m), 100) for m in ds["model"].values],
                         " > ".join(m.removeprefix("uhn-") for m in ranked[:3])])
    n = int(ds["n_memories"].max())
    return (f"Percentage retrieved at N = {n} stored images (mean ± std over {ds.sizes['seed']} seeds).\n\n"
            + markdown_table(["queries", "data", *[m.removeprefix("uhn-") for m in ds["model"].values], "best"], rows)
            + "\n\nPaper (fig. 2, read from the text): Manhattan is the best similarity, roughly equal to "
              "Euclidean and dot product on MNIST, slightly better on CIFAR-10 and substantially better "
              "on Tiny ImageNet.")


EXPERIMENT = Experiment(
    name="uhn-capacity",
    title="UHN fig. 2: capacity by similarity function",
    config={
        "sweep": {"function": "neurodyn.jobs.protocols:one_step_point"},
        "grid": {"data": ["mnist", "cifar10", "tinyimagenet"], "model": MODELS, "n_memories": N_MEMORIES,
                 "seed": [0, 1, 2, 3, 4]},
        "zip": {"setting": {"corruption": ["gaussian:0.5,absolute=true", "mask:0.5,side=top"],
                            "separation": ["max", "softmax:100"]}},
    },
    quick={"grid": {"data": ["mnist"], "n_memories": [10, 100, 500], "seed": [0, 1]}},
    figure=figure,
    report=report,
    cost="1,980 points; measured 54 min on 2 local workers (2 shared CPU cores); Jensen-Shannon on Tiny ImageNet takes most of it",
)
