"""`python -m flowdeck.cli`: the `flowdeck` entry point."""

import sys

from flowdeck.cli.main import main

sys.exit(main())
