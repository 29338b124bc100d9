"""Data: the BioMassters layout, guide composites, prepared HDF5 and synthetic BioMassters."""
