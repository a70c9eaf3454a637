"""`attain-privacy export|erase ...` (or `python -m services.privacy`): services/privacy/cli.py."""

import sys

from services.privacy.cli import main

if __name__ == "__main__":
    sys.exit(main())
