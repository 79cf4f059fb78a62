"""Jobs made of stages: the resumable step runner (:mod:`.steps`), the stages as the jobs call
them (:mod:`.stages`), ``demo`` (:mod:`.demo`) and ``ablate`` (:mod:`.ablate`);
:mod:`.pipeline` re-exports them under the former module name.
"""
