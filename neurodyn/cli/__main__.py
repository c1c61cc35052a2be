"""``python -m neurodyn.cli``: the ``neurodyn`` command."""

import sys

from . import main

sys.exit(main())
