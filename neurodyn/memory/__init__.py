"""Memories stored through codecs: banks of codes from stimuli (:mod:`~neurodyn.memory.bank`) and
the encoded memories with their HEN and semantic read-outs (:mod:`~neurodyn.memory.encoded`)."""
