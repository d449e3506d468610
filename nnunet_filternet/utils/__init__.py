"""Small shared helpers: atomic writes and parallel maps with progress bars."""
