"""``python -m e2eai.cli``: the same command line as ``e2eai``."""

from e2eai.cli import main

main()
