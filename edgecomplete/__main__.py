"""`python -m edgecomplete` is the `edgecomplete` command."""

import sys

from .cli import main

sys.exit(main())
