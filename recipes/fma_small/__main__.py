"""``python -m recipes.fma_small STAGE [options]``; stages: :mod:`classify.recipe`."""

import sys
from pathlib import Path

from classify.recipe import stages
from wb.recipe import run_recipe

if __name__ == "__main__":
    conf = Path(__file__).with_name("conf.yml")
    sys.exit(run_recipe("python -m recipes.fma_small", conf, stages("fma_small")))
