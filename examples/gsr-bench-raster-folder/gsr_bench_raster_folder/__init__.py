"""gsr-bench dataset plugin: a folder of paired guide and target rasters, tiled."""
