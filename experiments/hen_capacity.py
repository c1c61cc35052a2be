"""HEN table 1 and fig. 2: recall quality of raw pixels vs encoders, vs beta and vs the number of
stored images, from half-masked queries (bottom half zeroed), by the continuous dynamics
(EncodedMemory.recall: MCHN-L2, codes balanced to unit mean norm, dopri5 for 20 time units).

Metrics as HEN: MSE and 1 - SSIM between the decoded final state and the decoded stored code of
the target (0 when the code itself is recalled, whatever the codec's reconstruction quality).
Stand-ins and differences: CIFAR-10 32x32 (COCO has only 159 images here; HEN used 6,000-15,000
COCO images at 28x28x3); at most 2,000 stored images (the held-out fifth of the CIFAR-10 test set,
on which no project codec was trained), 50 of them queried per point (a medium grid: 2 seeds, 6 (N, beta) points; the raw-pixel
dynamics in 3,072 dimensions cost 3-16 s per point on an idle core and several times more on our shared one); ``taef2`` (continuous
latents, 32x4x4) stands in for the SD-KL autoencoder, ``vqae`` (our VQ autoencoder, 16x8x8
quantized) for vqf8 / DALL-E's dVAE; no D-VAE, vqf8 or vqf16 weights are available.
"""

from neurodyn.jobs.experiment import Experiment, markdown_table, mean_std, over_seeds

CODECS = ["pixels", "taef2", "vqae"]
# (n_memories, beta) pairs: a beta sweep at N = 1000 and an N sweep at beta = 100
POINTS = [(1000, 10.0), (1000, 30.0), (1000, 100.0), (1000, 1000.0), (100, 100.0), (2000, 100.0)]
PAPER = {6000: "0.836, 0.064 / 0.000, 0.000", 8000: "0.835, 0.067 / 0.000, 0.000",
         10000: "0.835, 0.064 / 0.000, 0.000", 15000: "0.836, 0.066 / 0.000, 0.000"}


def _curve(ds, fix, value, vary):
    sel = [i for i in range(ds.sizes["point"]) if float(ds[fix].values[i]) == value]
    return ds.isel(point=sel).swap_dims(point=vary) if len(sel) > 1 else None


def figure(ds):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.8))
    for row, (fix, value, vary) in enumerate([("n_memories", 1000, "beta"), ("beta", 100.0, "n_memories")]):
        sub = _curve(ds.drop_vars("status", errors="ignore"), fix, value, vary)
        if sub is None:  # a single (N, beta) point (--quick): bars per codec
            for ax, var in zip(axes[row], ["mse", "one_minus_ssim", "accuracy"]):
                mean, std = over_seeds(ds[var].isel(point=0))
                ax.bar(list(mean["codec_name"].values), mean.values, yerr=std.values, capsize=3)
                ax.set_ylabel(var.replace("_", " "))
                ax.set_title(f"N = {int(ds['n_memories'].values[0])}, beta = {float(ds['beta'].values[0]):g}",
                             fontsize=8)
            for ax in axes[1]:
                ax.axis("off")
            break
        sub = sub.sortby(vary)
        for ax, var, label in zip(axes[row], ["mse", "one_minus_ssim", "accuracy"],
                                  ["MSE (decoded vs decoded target)", "1 - SSIM", "identity accuracy"]):
            for codec in sub["codec_name"].values:
                mean, std = over_seeds(sub[var].sel(codec_name=codec))
                ax.errorbar(sub[vary].values, mean.values, yerr=std.values, marker="o", ms=3, capsize=2, label=codec)
            ax.set_xscale("log")
            ax.set_xlabel(vary.replace("_", " "))
            ax.set_ylabel(label)
            ax.set_title(f"{fix.replace('_', ' ')} = {value:g}", fontsize=8)
        axes[row][-1].legend(fontsize=7)
    return fig


def report(ds):
    rows = []
    for i in range(ds.sizes["point"]):
        n, beta = int(ds["n_memories"].values[i]), float(ds["beta"].values[i])
        cells = ds.isel(point=i)
        rows.append([n, f"{beta:g}", *[f"{mean_std(cells['one_minus_ssim'].sel(codec_name=c), 1, '{:.3f} ± {:.3f}')}, "
                                        f"{mean_std(cells['mse'].sel(codec_name=c), 1, '{:.3f} ± {:.3f}')}; "
                                        f"{mean_std(cells['accuracy'].sel(codec_name=c), 100, '{:.0f}%')}"
                                        for c in ds["codec_name"].values]])
    paper = markdown_table(["images", "Image (raw) / D-VAE: 1-SSIM, MSE", "vqf8", "vqf16"],
                           [[n, v, "0.019-0.021, 0.000", "0.019-0.048, 0.004"] for n, v in PAPER.items()])
    return ("CIFAR-10 32x32, stored images drawn from the 2,000 held-out test images, 50 of them queried with the "
            f"bottom half masked; mean ± std over {ds.sizes['seed']} seeds. Cells: 1-SSIM, MSE (decoded recall vs "
            "decoded target code); identity accuracy. `taef2` stands in for SD-KL, `vqae` for vqf8 / D-VAE.\n\n"
            + markdown_table(["N stored", "beta", *ds["codec_name"].values], rows)
            + "\n\nPaper, table 1 (6,000-15,000 COCO images at 28x28x3, l2 or dot similarity; beta not stated "
              "per row):\n\n" + paper
            + "\n\nPaper fig. 2: encoder-based HENs have lower MSE and 1-SSIM than raw images over a very large "
              "range of beta (6,000 COCO images).")


EXPERIMENT = Experiment(
    name="hen-capacity",
    title="HEN table 1 and fig. 2: encoded vs raw-pixel memories, half-masked CIFAR-10 queries",
    config={
        "sweep": {"function": "neurodyn.jobs.encoded_protocols:hen_capacity_point"},
        "grid": {"codec_name": CODECS, "seed": [0, 1]},
        "zip": {"point": {"n_memories": [n for n, _ in POINTS], "beta": [b for _, b in POINTS]}},
        "fixed": {"data_name": "cifar10", "n_queries": 50, "corruption": "mask:0.5,side=bottom", "model": "mchn-l2"},
    },
    quick={"grid": {"codec_name": ["pixels", "taef2"], "seed": [0, 1]},
           "zip": {"point": {"n_memories": [200], "beta": [100.0]}},
           "fixed": {"n_queries": 20}},
    figure=figure,
    report=report,
    cost="36 points (medium grid), measured 16.7 min with --workers 0 on 2 CPU cores shared with other jobs; the 12 raw-pixel points take most of it",
)
