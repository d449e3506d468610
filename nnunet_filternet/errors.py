"""User-facing errors: raised for bad input, printed by the CLI as one line, exit code 2."""

from __future__ import annotations


class FilterNetError(Exception):
    """Bad input or misuse. The message names the file (if any), what was expected and what was found."""


class InputError(FilterNetError):
    """A specific input file or folder is not what was expected."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        """Picklable, so that it crosses process boundaries (parallel_map workers)."""
        return (type(self), (self.path, self.problem))
