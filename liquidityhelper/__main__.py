import sys

from liquidityhelper.cli import main

sys.exit(main())
