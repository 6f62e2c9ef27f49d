import sys

from densekit.cli.main import main

sys.exit(main())
