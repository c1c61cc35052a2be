"""Jobs: the recall pipelines (:mod:`~neurodyn.jobs.recall`), the papers' protocols as sweep point
functions (:mod:`~neurodyn.jobs.protocols`, :mod:`~neurodyn.jobs.encoded_protocols`) and the
experiment runner (:mod:`~neurodyn.jobs.experiment`)."""
