"""`python -m tui [MODEL]` starts the terminal UI."""

import sys

from .app import main

main(sys.argv[1] if len(sys.argv) > 1 else None)
