import sys

from imhi_bench.cli.main import main

sys.exit(main())
