"""Plans presets for nnU-Net (``filternet plans``): FilterNet-planned, tiny CPU and paper-protocol plans."""
