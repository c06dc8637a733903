#!/usr/bin/env bash
# Run the self-checking testbench of this difflogic Verilog export.
#   ./run_sim.sh [iverilog|verilator|all] [+plusargs...]     (default: all)
# Exit status is non-zero if a build fails or the bench reports a mismatch.
# Builds go to build/; the Verilator binary is rebuilt only when tb.v or the RTL changed
# (the vectors are read at run time, so new vectors need no rebuild).
# VERILATOR_OPT_FAST (default -Os) sets the C++ optimization of the model (-O0 compiles faster).
set -euo pipefail
cd "$(dirname "$0")"
ulimit -c 0 2>/dev/null || true
sim="${1:-all}"
[ $# -gt 0 ] && shift
mkdir -p build

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "error: $1 not found on PATH; install it with: apt-get install $2" >&2
    exit 127
  fi
}

run_iverilog() {
  need iverilog iverilog
  need vvp iverilog
  iverilog -g2005 -o build/tb_iverilog.vvp tb.v difflogic_net.v
  vvp -n build/tb_iverilog.vvp "$@"
}

run_verilator() {
  need verilator verilator
  need make make
  local mdir=build/verilator bin=build/verilator/Vtb
  if [ ! -x "$bin" ] || [ tb.v -nt "$bin" ] || [ difflogic_net.v -nt "$bin" ]; then
    local jobs cache objs="verilated.o verilated_timing.o verilated_threads.o" o
    jobs="$(nproc 2>/dev/null || echo 2)"
    rm -rf "$mdir"
    # -fno-dfg: Verilator's dataflow optimizer re-inlines shared gate outputs into expression
    # trees, which blows wide gate netlists up to megabytes of C++.
    verilator --cc --exe --main --timing -fno-dfg -Wno-fatal -Wno-lint -Wno-style --top-module tb \
      -Mdir "$mdir" -o Vtb tb.v difflogic_net.v > build/verilator_build.log 2>&1 \
      || { tail -n 40 build/verilator_build.log >&2; exit 1; }
    # The Verilator run-time objects are identical for every export and take most of the
    # compile time: keep them in a per-version cache and reuse them.
    cache="${DIFFLOGIC_VERILATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/difflogic/verilator}"
    cache="$cache/$(verilator --version | tr -cs 'A-Za-z0-9.' '_')timing"
    local hit=1
    for o in $objs; do [ -f "$cache/$o" ] || hit=0; done
    if [ "$hit" = 1 ]; then
      for o in $objs; do cp "$cache/$o" "$mdir/$o"; touch "$mdir/$o"; done
    fi
    make -C "$mdir" -f Vtb.mk -j "$jobs" OPT_FAST="${VERILATOR_OPT_FAST:--Os}" \
      >> build/verilator_build.log 2>&1 || { tail -n 40 build/verilator_build.log >&2; exit 1; }
    if [ "$hit" = 0 ] && mkdir -p "$cache" 2>/dev/null; then
      for o in $objs; do
        cp "$mdir/$o" "$cache/$o.tmp.$$" && mv -f "$cache/$o.tmp.$$" "$cache/$o" || true
      done
    fi
  fi
  "$bin" "$@"
}

case "$sim" in
  iverilog) run_iverilog "$@" ;;
  verilator) run_verilator "$@" ;;
  all) run_iverilog "$@"; run_verilator "$@" ;;
  *) echo "usage: $0 [iverilog|verilator|all] [+plusargs...]" >&2; exit 2 ;;
esac
