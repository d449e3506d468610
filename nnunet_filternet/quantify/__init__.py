"""``filternet quantify``: per-compartment biomarkers of muscle MRI, and colour tables for viewers.

- :mod:`.fat_fraction`: muscle (water) and fat intensity modes of a subject, T1 and Dixon fat fractions.
- :mod:`.biomarkers`: volume, normalised T1 signal and fat fraction per subject, side and compartment.
- :mod:`.colour_table`: 3D Slicer and ITK-SNAP label tables with the compartments' names and colours.
"""
