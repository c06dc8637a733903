#!/usr/bin/env bash
# The test command (README's second set-up command; .ci/run calls it after installing).
# Runs from inside tests/ so that `import difflogic` resolves to the *installed* package (with its
# compiled _C extension), not to the source folder at the repository root.
set -euo pipefail
cd "$(dirname "$0")"
exec python3 -m pytest -p no:cacheprovider -q . "$@"
