"""cocotb testbench of a difflogic AXI4-Stream export (run by tests/test_cocotb_axis.py on
Icarus Verilog and Verilator; not a pytest module).

The design is ``difflogic_net`` of ``difflogic export --target verilog --axis W [--fold]``;
the JSON file named by ``DIFFLOGIC_AXIS_SPEC`` gives the images as the bytes of their frames
(whole beats) and each image's expected result ``{scores, class_idx}`` from the PyTorch hard
forward, plus the results of two malformed frames.  cocotbext-axi drives s_axis and reads
m_axis; their pause generators stall the source (tvalid low) and the sink (tready low) at
random.  Every result is checked: value, tlast (one beat per result) and tuser (the frame
error flag).
"""
import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

SPEC = json.loads(open(os.environ["DIFFLOGIC_AXIS_SPEC"]).read())
FRAMES = [bytes.fromhex(h) for h in SPEC["frames"]]
EXPECTED = SPEC["expected"]
MASK = (1 << SPEC["result_bits"]) - 1
CLASS_MASK = (1 << SPEC["class_bits"]) - 1
BEAT_BYTES = SPEC["width"] // 8
OUT_BYTES = SPEC["out_width"] // 8
#: generous: every image plus its latency, at the slowest stall rates used here
TIMEOUT_NS = 10 * 40 * (SPEC["cycles_per_image"] + SPEC["latency_cycles"] + 50)


def pauses(seed: int, rate: float):
    rng = random.Random(seed)
    while True:
        yield rng.random() < rate


async def start(dut, stall: float, backpressure: float, seed: int):
    """Clock, stream models with random stalls on both sides, and a reset."""
    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    # the models are reset by reset() below rather than by watching aresetn: on Verilator
    # 5.006 a value-change callback on a signal written from another callback reverts it
    src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk)
    snk = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk)
    src.set_pause_generator(pauses(seed, stall))
    snk.set_pause_generator(pauses(seed + 1, backpressure))
    await reset(dut, (src, snk))
    return src, snk


async def reset(dut, models, cycles: int = 3):
    """aresetn low for ``cycles`` rising edges; the stream models drop what they hold."""
    for m in models:
        m.assert_reset(True)
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, cycles)
    dut.aresetn.value = 1
    for m in models:
        m.assert_reset(False)
    await ClockCycles(dut.aclk, 1)


async def result(snk, what: str):
    """The next result: (value, tuser); a result must be exactly one beat."""
    frame = await with_timeout(snk.recv(compact=False), TIMEOUT_NS, "ns")
    data = bytes(frame.tdata)
    assert len(data) == OUT_BYTES, (f"{what}: a result of {len(data) / OUT_BYTES:g} beats "
                                    "(tlast must be 1 on every result beat)")
    return int.from_bytes(data, "little") & MASK, int(frame.tuser[0])


async def expect(snk, images, what: str, error: int = 0) -> None:
    for i in images:
        value, user = await result(snk, f"{what}, image {i}")
        want = EXPECTED[i]
        assert value == want, (f"{what}, image {i}: class {value & CLASS_MASK} (result "
                               f"{value:#x}), PyTorch: class {want & CLASS_MASK} ({want:#x})")
        assert user == error, f"{what}, image {i}: tuser {user}, expected {error}"


@cocotb.test()
async def back_to_back_with_random_stalls(dut):
    """Every image back to back, tvalid and tready dropped on 30% of the cycles each."""
    src, snk = await start(dut, stall=0.3, backpressure=0.3, seed=1)
    for f in FRAMES:
        await src.send(AxiStreamFrame(f))
    await expect(snk, range(len(FRAMES)), "stalls")


@cocotb.test()
async def reset_in_the_middle_of_a_frame(dut):
    """Reset while the second image is half sent and the first one's result is in flight
    (the sink holds tready low): the next frames come out right and nothing else does."""
    src, snk = await start(dut, stall=0.0, backpressure=1.0, seed=3)
    beats = len(FRAMES[0]) // BEAT_BYTES
    await src.send(AxiStreamFrame(FRAMES[0]))
    await src.send(AxiStreamFrame(FRAMES[1]))
    sent, target = 0, beats + max(1, beats // 2)
    for _ in range(20 * (beats + SPEC["cycles_per_image"])):   # beats taken, sampled mid-cycle
        await FallingEdge(dut.aclk)
        sent += int(dut.s_axis_tvalid.value) & int(dut.s_axis_tready.value)
        if sent == target:
            break
    assert sent == target, f"the design took {sent} beats, the two frames have {2 * beats}"
    await RisingEdge(dut.aclk)
    await reset(dut, (src, snk), cycles=4)   # the source model drops its frames
    assert snk.empty(), "a result came out although the sink never took one"
    snk.set_pause_generator(pauses(5, 0.3))
    for i in range(2, len(FRAMES)):
        await src.send(AxiStreamFrame(FRAMES[i]))
    await expect(snk, range(2, len(FRAMES)), "after the reset")
    await ClockCycles(dut.aclk, SPEC["cycles_per_image"] + SPEC["latency_cycles"] + 10)
    assert snk.empty(), "more results than frames after the reset"


@cocotb.test()
async def wrong_length_frames_are_flagged_and_the_stream_stays_in_step(dut):
    """A frame cut short (zero-filled) and one too long (cut), each flagged in tuser, then
    ordinary frames."""
    src, snk = await start(dut, stall=0.2, backpressure=0.2, seed=7)
    short, long_ = SPEC["short_frame"], SPEC["long_frame"]
    await src.send(AxiStreamFrame(bytes.fromhex(short["bytes"])))
    await src.send(AxiStreamFrame(bytes.fromhex(long_["bytes"])))
    for i in range(len(FRAMES)):
        await src.send(AxiStreamFrame(FRAMES[i]))
    for name, case in (("short frame", short), ("long frame", long_)):
        value, user = await result(snk, name)
        assert user == 1, f"{name}: tuser {user}, expected 1 (the frame error flag)"
        assert value == case["expected"], (f"{name}: result {value:#x}, expected "
                                           f"{case['expected']:#x} (PyTorch on the "
                                           "zero-filled / cut image)")
    await expect(snk, range(len(FRAMES)), "after the wrong-length frames")
