"""Process machinery shared by every stage: worker pools and progress (:mod:`.pool`), workers
that die with their parent and output-folder locks (:mod:`.guard`), torchrun sharding
(:mod:`.sharding`).
"""
