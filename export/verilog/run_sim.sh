#!/usr/bin/env bash
# Run the self-checking testbench of this difflogic Verilog export.
#   ./run_sim.sh [auto|iverilog|verilator|all] [+plusargs...]     (default: auto)
#   ./run_sim.sh estimate        (the expected time of each simulator, and auto's choice)
# auto picks the simulator expected to finish first for this design's size: Icarus Verilog
# starts at once but its compile time grows with the square of the gate count (an hour at
# 700k gates); Verilator's C++ build costs about a millisecond per gate, then simulates in no
# time.  Before starting it states the design's size and a rough expected time, and while it
# runs it reports the elapsed time of long steps and the bench's progress.
# Exit status is non-zero if a build fails or the bench reports a mismatch.
# Builds go to build/; the Verilator binary is rebuilt only when tb.v or the RTL changed
# (the vectors are read at run time, so new vectors need no rebuild).
# VERILATOR_OPT_FAST (default -O0) sets the C++ optimization of the model: -O0 builds about 4x
# faster than -Os, which simulates faster (worth it for many thousands of vectors).
set -euo pipefail
cd "$(dirname "$0")"
ulimit -c 0 2>/dev/null || true
sim="${1:-auto}"
[ $# -gt 0 ] && shift
mkdir -p build
opt_fast="${VERILATOR_OPT_FAST:--O0}"

have() { command -v "$1" >/dev/null 2>&1; }

need() {
  if ! have "$1"; then
    echo "error: $1 not found on PATH; install it with: apt-get install $2" >&2
    exit 127
  fi
}

sidecar_int() {  # an integer field of difflogic_net.json (0 if missing)
  local v
  v="$(sed -n "s/^  \"$1\": \([0-9][0-9]*\),\{0,1\}$/\1/p" difflogic_net.json 2>/dev/null | head -n 1)"
  echo "${v:-0}"
}
gates="$(sidecar_int gates)"
vectors="$(sidecar_int vectors)"

verilator_built() {
  [ -x build/verilator/Vtb ] && [ ! tb.v -nt build/verilator/Vtb ] \
    && [ ! difflogic_net.v -nt build/verilator/Vtb ]
}

estimate() {  # rough seconds for simulator $1 (rates of one x86 core, for orientation only)
  local built=0
  [ "$1" = verilator ] && verilator_built && built=1
  awk -v g="$gates" -v v="$vectors" -v s="$1" -v built="$built" -v opt="$opt_fast" 'BEGIN {
    o0 = (opt == "-O0")
    if (s == "iverilog") t = 2 + 8e-9 * g * g + 2e-6 * g * v
    else t = 1 + (o0 ? 3e-8 : 3e-9) * g * v + (built ? 0 : 20 + (o0 ? 1e-3 : 4e-3) * g)
    printf "%d", t }'
}

human() {  # seconds -> "about N s / min / h"
  awk -v t="$1" 'BEGIN { if (t < 90) printf "about %d s", t + 0.5
                         else if (t < 5400) printf "about %d min", t / 60 + 0.5
                         else printf "about %.1f h", t / 3600 }'
}

choose() {  # the simulator expected to finish first among the installed ones
  local iv=0 vl=0
  have iverilog && have vvp && iv=1
  have verilator && have make && vl=1
  if [ "$iv" = 0 ] && [ "$vl" = 0 ]; then
    echo "error: no Verilog simulator found; install one with: apt-get install iverilog" \
         "(or: apt-get install verilator)" >&2
    exit 127
  fi
  if [ "$iv" = 1 ] && { [ "$vl" = 0 ] || [ "$(estimate iverilog)" -le "$(estimate verilator)" ]; }; then
    echo iverilog
  else
    echo verilator
  fi
}

announce() {  # what is about to run, and roughly how long it takes
  echo "run_sim.sh: $1 on $(printf "%'d" "$gates") gates x $vectors vectors," \
       "expected $(human "$(estimate "$1")")"
}

with_ticker() {  # with_ticker WHAT CMD...: run CMD, printing the elapsed time every 30 s
  local what="$1" rc=0 tp
  shift
  # the ticker sleeps in the background and waits for it, so that it ends at once when killed
  # (a foreground sleep would keep it, and the caller's output pipe, alive up to 5 s more)
  ( trap 'kill "$s" 2>/dev/null; exit 0' TERM
    t=0
    while :; do
      sleep 5 >/dev/null 2>&1 & s=$!
      wait "$s"
      kill -0 $$ 2>/dev/null || exit 0
      t=$((t + 5)); [ $((t % 30)) -eq 0 ] && echo "  ... $what: ${t} s so far" >&2
    done ) &
  tp=$!
  "$@" || rc=$?
  kill "$tp" 2>/dev/null || true
  wait "$tp" 2>/dev/null || true
  return "$rc"
}

run_iverilog() {
  need iverilog iverilog
  need vvp iverilog
  announce iverilog
  with_ticker "compiling with iverilog" iverilog -g2005 -o build/tb_iverilog.vvp tb.v difflogic_net.v
  with_ticker "simulating with vvp" vvp -n build/tb_iverilog.vvp "$@"
}

build_verilator() {
  local mdir=build/verilator jobs cache objs="verilated.o verilated_timing.o verilated_threads.o" o
  local flags=(-fno-dfg)
  jobs="$(nproc 2>/dev/null || echo 2)"
  rm -rf "$mdir"
  # -fno-dfg: Verilator's dataflow optimizer re-inlines shared gate outputs into expression
  # trees, which blows wide gate netlists up to megabytes of C++.
  # -fno-const-bit-op-tree: the bit-op-tree rewrite (Verilator 5.006) miscomputes some large
  # gate netlists, outputs that Icarus Verilog and the reference simulator agree on.
  verilator -fno-const-bit-op-tree --version >/dev/null 2>&1 && flags+=(-fno-const-bit-op-tree)
  verilator --cc --exe --main --timing "${flags[@]}" -Wno-fatal -Wno-lint -Wno-style --top-module tb \
    -Mdir "$mdir" -o Vtb tb.v difflogic_net.v > build/verilator_build.log 2>&1 \
    || { tail -n 40 build/verilator_build.log >&2; return 1; }
  # The Verilator run-time objects are identical for every export and take most of the
  # compile time of small designs: keep them in a per-version cache and reuse them.
  cache="${DIFFLOGIC_VERILATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/difflogic/verilator}"
  cache="$cache/$(verilator --version | tr -cs 'A-Za-z0-9.' '_')timing"
  local hit=1
  for o in $objs; do [ -f "$cache/$o" ] || hit=0; done
  if [ "$hit" = 1 ]; then
    for o in $objs; do cp "$cache/$o" "$mdir/$o"; touch "$mdir/$o"; done
  fi
  make -C "$mdir" -f Vtb.mk -j "$jobs" OPT_FAST="$opt_fast" \
    >> build/verilator_build.log 2>&1 || { tail -n 40 build/verilator_build.log >&2; return 1; }
  if [ "$hit" = 0 ] && mkdir -p "$cache" 2>/dev/null; then
    for o in $objs; do
      cp "$mdir/$o" "$cache/$o.tmp.$$" && mv -f "$cache/$o.tmp.$$" "$cache/$o" || true
    done
  fi
}

run_verilator() {
  need verilator verilator
  need make make
  announce verilator
  if ! verilator_built; then
    with_ticker "building with verilator (log: build/verilator_build.log)" build_verilator
  fi
  build/verilator/Vtb "$@"
}

if [ "$sim" = estimate ]; then
  echo "$(printf "%'d" "$gates") gates x $vectors vectors: iverilog $(human "$(estimate iverilog)")," \
       "verilator $(human "$(estimate verilator)") (VERILATOR_OPT_FAST=$opt_fast); auto: $(choose)"
  exit 0
fi
[ "$sim" = auto ] && sim="$(choose)"
case "$sim" in
  iverilog) run_iverilog "$@" ;;
  verilator) run_verilator "$@" ;;
  all) run_iverilog "$@"; run_verilator "$@" ;;
  *) echo "usage: $0 [auto|iverilog|verilator|all|estimate] [+plusargs...]" >&2; exit 2 ;;
esac
