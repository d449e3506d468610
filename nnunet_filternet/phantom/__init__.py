"""Synthetic two-leg calf T1 MR phantom with compartment labels (healthy and DM1 subjects).

Conventions (details in ``docs/phantom.md``): SimpleITK / LPS physical space, identity direction, image
centred on the origin. Increasing x index = towards the patient's left, so the patient's right leg lies in
the low-x half of the image and the left leg in the high-x half; increasing y index = posterior; increasing
z index = superior = proximal (towards the knee). Arrays are numpy (z, y, x); ``shape`` and ``spacing``
arguments are (x, y, z). Each thick slice averages several sub-slices; its label is the middle sub-slice's.

Modules: ``anatomy`` (one leg's cross-section along z), ``layout`` (legs in the field of view), ``fat``
(DM1 infiltration), ``vessels`` (edges inside compartments), ``fields`` (smooth random fields in mm),
``physics`` (signal, thick slices, bias, Rician noise), ``spec`` (per-subject parameters), ``subject``
(rendering one subject), ``cohort`` (groups, severities, writing a cohort), ``preview`` (Fig. 1-like panel).
"""

from __future__ import annotations

from nnunet_filternet.phantom.cohort import cohort_specs, make_cohort
from nnunet_filternet.phantom.spec import SubjectSpec
from nnunet_filternet.phantom.subject import PhantomSubject, generate_subject

__all__ = ["PhantomSubject", "SubjectSpec", "cohort_specs", "generate_subject", "make_cohort"]
