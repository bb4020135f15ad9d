import sys

from imhi_bench.cli import main

sys.exit(main())
