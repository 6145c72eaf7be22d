"""Files on disk: the one atomic-write helper and its temporary-name scheme, shared by every
layer that writes (outputs, reports, downloaded weights, videos). It may import the core only.
"""
