// Simulation loop of a cocotb + Verilator run for Verilator releases whose VPI lacks the
// evalNeeded()/doInertialPuts() calls that cocotb 2's own loop (share/lib/verilator/
// verilator.cpp) needs (Verilator < 5.036, e.g. Debian's 5.006); tests/test_cocotb_axis.py
// builds with it only there.  cocotb's writes are then applied at once, so the run sets
// COCOTB_TRUST_INERTIAL_WRITES=0 (cocotb schedules them itself).
//
// Per time step: evaluate and settle value-change callbacks until nothing changes (with the
// ReadWrite callbacks in between), then the ReadOnly callbacks, then advance to the earliest
// of cocotb's next timer and the model's next timed event.
#include <memory>

#include "Vtop.h"
#include "verilated.h"
#include "verilated_vpi.h"

static vluint64_t main_time = 0;
double sc_time_stamp() { return main_time; }

extern "C" void vlog_startup_routines_bootstrap(void);

static bool settle() {  // value-change callbacks may change values again: repeat to a fixpoint
    bool any = VerilatedVpi::callValueCbs();
    for (bool again = any; again;) again = VerilatedVpi::callValueCbs();
    return any;
}

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    std::unique_ptr<Vtop> top(new Vtop(""));
    Verilated::fatalOnVpiError(false);
    vlog_startup_routines_bootstrap();
    VerilatedVpi::callCbs(cbStartOfSimulation);
    settle();
    const vluint64_t none = ~0ULL;
    while (!Verilated::gotFinish()) {
        for (bool again = true; again;) {
            top->eval_step();
            again = settle();
            again |= VerilatedVpi::callCbs(cbReadWriteSynch);
            again |= settle();
        }
        top->eval_end_step();
        VerilatedVpi::callCbs(cbReadOnlySynch);
        vluint64_t next_cb = VerilatedVpi::cbNextDeadline();
        vluint64_t next_model = top->eventsPending() ? top->nextTimeSlot() : none;
        vluint64_t next = next_cb < next_model ? next_cb : next_model;
        if (next == none) break;
        main_time = next;
        VerilatedVpi::callCbs(cbNextSimTime);
        settle();
        VerilatedVpi::callTimedCbs();
        settle();
    }
    top->final();
    VerilatedVpi::callCbs(cbEndOfSimulation);
    return Verilated::threadContextp()->errorCount() > 0 ? 1 : 0;
}
