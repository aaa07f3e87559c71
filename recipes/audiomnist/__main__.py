"""``python -m recipes.audiomnist STAGE [options]``; stages: :func:`classify.cli.recipe_main`."""

import sys

from classify.cli import recipe_main

if __name__ == "__main__":
    sys.exit(recipe_main("audiomnist"))
