import sys

from rlenhance.cli import main

sys.exit(main())
