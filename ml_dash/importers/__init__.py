"""``ml-dash import``: runs of other trackers into the local tree the SDK writes.

``source`` is the contract between the readers and the writer; each ``*_source`` module reads
one tracker's format with that tracker's own library (an optional extra); ``writer`` puts one
run into the tree exactly once; ``run`` is the command's pipeline.
"""
