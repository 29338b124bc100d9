"""The BioMassters dataset plugin: the official release read from a local folder, and a seeded
simulator that writes the same layout.

Modules: :mod:`.layout` reads the official folder layout, :mod:`.composite` turns a chip's
monthly images into a guide, :mod:`.synth` simulates chips, :mod:`.check` validates a folder,
:mod:`.dataset` and :mod:`.synthetic` are the adapters, :mod:`.commands` the ``gsr-bench data``
subcommands.
"""
