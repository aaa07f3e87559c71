"""``python -m recipes.fsdd {prepare,train,predict,table} [options]``.

Stages (all thin wrappers of ``wb classify``; settings in conf.yml next to this file):
    prepare   check or --download the data set and build the decoded-audio cache
    train     cross-validate (options of ``wb classify``: --model, --protocol, --folds, ...)
    predict   top-k classes of audio files with a trained model.pt
    table     Markdown results table from run folders (the README's table)
"""

import sys

from classify.cli import recipe_main

if __name__ == "__main__":
    sys.exit(recipe_main("fsdd"))
