"""`python -m kyma_mcp` runs the same CLI as the `kyma-mcp` script."""

import sys

from kyma_mcp.cli import main

sys.exit(main())
