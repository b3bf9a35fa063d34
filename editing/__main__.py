"""`python -m editing ...`: see editing/cli.py."""

import sys

from editing.cli import main

sys.exit(main())
