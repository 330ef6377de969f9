"""`python -m ragstore.cli`: the same command as the `ragstore` console script."""

from ragstore.cli import main

main()
