"""``python -m alpagasus.sweep DIR``: the same as ``alpagasus-report DIR``."""

import sys

from alpagasus.sweep.cli import main

sys.exit(main())
