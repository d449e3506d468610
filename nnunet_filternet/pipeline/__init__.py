"""End-to-end jobs built from the other stages: ``filternet demo`` and ``filternet predict``."""
