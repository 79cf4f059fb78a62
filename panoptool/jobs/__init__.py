"""Jobs made of stages: the resumable step runner, ``demo`` and ``ablate`` (:mod:`.pipeline`).
"""
