"""PEP 517 build backend: setuptools, without its information-only notices.

An editable install of this project maps ``reuse_accel.hw`` to ``hw/`` and so on, which makes
setuptools print an "Editable installation" notice (``InformationOnly``) on every install. It is
not a warning about the project; this backend silences that class only.
"""

import warnings

from setuptools.build_meta import *  # noqa: F403
from setuptools.warnings import InformationOnly

warnings.filterwarnings("ignore", category=InformationOnly)
