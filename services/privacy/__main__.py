"""`python -m services.privacy export|erase ...` (services/privacy/cli.py)."""

import sys

from services.privacy.cli import main

sys.exit(main(sys.argv[1:]))
