#!/usr/bin/env bash
# The test command (README's second set-up command; .ci/run calls it after installing):
#
#   bash tests/run.sh                       the whole suite
#   bash tests/run.sh FILE... [PYTEST_ARGS]  only those files (or folders, or FILE::test ids)
#   bash tests/run.sh -k name               the whole suite with pytest options
#
# FILE may be given relative to the current folder or to tests/.  Runs from inside tests/ so
# that `import difflogic` resolves to the *installed* package (with its compiled _C extension),
# not to the source folder at the repository root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

targets=()
while [ $# -gt 0 ] && [[ "$1" != -* ]]; do
  path=${1%%::*}
  test_id=${1:${#path}}                       # "::name" part of a test id, if any
  if [ -e "$path" ]; then
    targets+=("$(cd "$(dirname "$path")" && pwd)/$(basename "$path")$test_id")
  elif [ -e "$here/$path" ]; then
    targets+=("$here/$path$test_id")
  else
    echo "tests/run.sh: no test file or folder '$path' (give a path such as tests/test_cli.py," \
         "relative to here or to tests/)" >&2
    exit 2
  fi
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=(.)

cd "$here"
exec python3 -m pytest -p no:cacheprovider -q "${targets[@]}" "$@"
