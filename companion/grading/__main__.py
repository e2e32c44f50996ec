"""``python -m companion.grading``: see :mod:`companion.grading.cli`."""

import sys

from companion.grading.cli import main

sys.exit(main())
