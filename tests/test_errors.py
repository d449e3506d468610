"""User-facing errors survive a trip through a worker process."""

from __future__ import annotations

import pickle

from nnunet_filternet.errors import FilterNetError, InputError


def test_input_error_pickles_with_path_and_problem():
    e = pickle.loads(pickle.dumps(InputError("/data/sub-001.nii.gz", "expected a 3D image, found 2D")))
    assert isinstance(e, FilterNetError)
    assert e.path == "/data/sub-001.nii.gz" and e.problem == "expected a 3D image, found 2D"
    assert str(e) == "/data/sub-001.nii.gz: expected a 3D image, found 2D"
