# Sourced by the benches/ shell scripts: sets PY (the Python to use) and DL (an array: the
# command that runs the difflogic CLI).  DIFFLOGIC="..." chooses it (the tests use
# "$PYTHON -m difflogic"); else the installed `difflogic` console script; else this source
# checkout through "$PY -m difflogic" with the checkout on PYTHONPATH.
PY=${PYTHON:-python3}
if [ -n "${DIFFLOGIC:-}" ]; then
  read -r -a DL <<< "$DIFFLOGIC"
elif command -v difflogic >/dev/null 2>&1; then
  DL=(difflogic)
else  # not installed as a console script: run from a source checkout
  DL=("$PY" -m difflogic)
  export PYTHONPATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"
fi
