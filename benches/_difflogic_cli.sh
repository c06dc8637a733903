# Sourced by the benches/ shell scripts: sets PY (the Python to use), DL (an array: the
# command that runs the difflogic CLI) and DL_PY (the Python that DL runs, empty when it
# cannot be told), and defines require_native_kernels.  DIFFLOGIC="..." chooses DL (the tests
# use "$PYTHON -m difflogic"); else the installed `difflogic` console script; else this source
# checkout through "$PY -m difflogic" with the checkout on PYTHONPATH.
PY=${PYTHON:-python3}
if [ -n "${DIFFLOGIC:-}" ]; then
  read -r -a DL <<< "$DIFFLOGIC"
  case "$(basename "${DL[0]}")" in python*) DL_PY=${DL[0]} ;; *) DL_PY= ;; esac
elif command -v difflogic >/dev/null 2>&1; then
  DL=(difflogic)
  DL_PY=$PY  # unless its "#!/.../python" or "#!/usr/bin/env python" line names another
  _shebang=(); read -r -a _shebang < "$(command -v difflogic)" || true
  for _word in "${_shebang[@]:0:2}"; do
    case "$(basename -- "${_word#\#!}")" in python*) DL_PY=${_word#\#!} ;; esac
  done
else  # not installed as a console script: run from a source checkout
  DL=("$PY" -m difflogic)
  DL_PY=$PY
  export PYTHONPATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"
fi

# Stops the script (exit 2) unless the difflogic that DL runs has its compiled kernels: without
# them every speed it reports is the PyTorch fallback's, ~70x slower.  DIFFLOGIC_ALLOW_SLOW=1
# goes on with a warning.  Checked from / so that the current folder cannot shadow the package.
require_native_kernels() {
  if [ -z "$DL_PY" ]; then
    echo "(cannot tell which Python runs '${DL[*]}': native kernels not checked)" >&2
    return 0
  fi
  local status
  if status=$(cd / && "$DL_PY" -m difflogic.platform 2>&1); then
    echo "$status"
  elif [ "${DIFFLOGIC_ALLOW_SLOW:-0}" != 0 ]; then
    echo "$status"
    echo "WARNING: DIFFLOGIC_ALLOW_SLOW=1: every speed below is the slow PyTorch fallback's" >&2
  else
    echo "$status" >&2
    echo "$(basename "$0"): stopping before any work (see above); fix that, or set" \
         "DIFFLOGIC_ALLOW_SLOW=1 to measure the slow fallback" >&2
    exit 2
  fi
}
