"""`python -m tailor.algorithms.image_classification [--job-dir DIR] [--defaults tailor|sagemaker]`."""

from __future__ import annotations

import os
import sys

# Before torch loads: two spinning OpenMP threads collapse ~4x when the other core is busy (docs/MEASURED.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tailor.algorithms.image_classification.contract import main  # noqa: E402

sys.exit(main())
