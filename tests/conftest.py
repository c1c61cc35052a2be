"""Test settings: small problems run fastest on one thread, and figures need no display."""

import os

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(int(os.environ.get("NEURODYN_TEST_THREADS", "1")))
