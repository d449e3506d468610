"""``python -m nnunet_filternet`` is ``filternet``."""

from __future__ import annotations

import sys

from nnunet_filternet.cli import main

sys.exit(main())
