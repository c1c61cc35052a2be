"""Work past one process: parameter sweeps on Dask (:mod:`~neurodyn.scale.sweep`, no domain code:
point functions are named) and memory banks sharded across torch.distributed ranks
(:mod:`~neurodyn.scale.shard`, the network's reduction backend)."""
