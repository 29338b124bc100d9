"""The data path every dataset shares: guide channel names, GeoTIFF reading, the prepared HDF5
store, tile sets of the sample contract, training batch samplers and fine-scale statistics."""
