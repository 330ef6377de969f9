"""`python -m ragstore.cli`: the same command as the `ragstore` console script."""

from ragstore.cli import main

if __name__ == "__main__":  # importing the module (a test walking every module) must not run the CLI
    main()
