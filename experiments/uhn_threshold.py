"""UHN appendix G (fig. 11): fraction retrieved vs the error threshold, CIFAR-10.

N = 250 stored images, bottom half masked (as the authors' code masks), max separation; the
threshold is compared with the raw sum of squared errors over the 3,072 values, as the paper
does (``retrieval_rate``; ``retrieval_rate_scaled`` rescales it per 784 values).
"""

from neurodyn.jobs.experiment import Experiment, markdown_table, mean_std, plot_curves

THRESHOLDS = [1, 10, 25, 50, 100, 150, 200, 300, 500]


def figure(ds):
    return plot_curves(ds, "retrieval_rate", "threshold", "model", logx=True,
                       ylabel="fraction retrieved (sse <= threshold)")


def report(ds):
    rows = [[m.removeprefix("uhn-"), *[mean_std(ds["retrieval_rate"].sel(model=m, threshold=t), 100)
                                       for t in ds["threshold"].values]] for m in ds["model"].values]
    return (f"Percentage of {int(ds['n_memories'])} CIFAR-10 images retrieved (mean ± std over "
            f"{ds.sizes['seed']} seeds) at each sse threshold.\n\n"
            + markdown_table(["similarity", *[f"T={t:g}" for t in ds["threshold"].values]], rows)
            + "\n\nPaper (appendix G): the curves are flat around T = 50 and every similarity is "
              "affected about equally; more images pass at larger thresholds.")


EXPERIMENT = Experiment(
    name="uhn-threshold",
    title="UHN appendix G: retrieval vs error threshold (CIFAR-10)",
    config={
        "sweep": {"function": "neurodyn.jobs.protocols:one_step_point"},
        "grid": {"model": ["uhn-manhattan", "uhn-euclidean", "uhn-dot"], "threshold": THRESHOLDS,
                 "seed": [0, 1, 2, 3, 4]},
        "fixed": {"data": "cifar10", "n_memories": 250, "separation": "max", "corruption": "mask:0.5,side=bottom"},
    },
    quick={"grid": {"threshold": [10, 50, 500], "seed": [0, 1]}, "fixed": {"n_memories": 100}},
    figure=figure,
    report=report,
    cost="135 points; measured 25 s on 2 local workers",
)
