"""An example gsr-bench plugin."""
