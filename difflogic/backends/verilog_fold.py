"""The streamed (folded) form of the Verilog back end: ``--fold [F]``, always behind the
AXI4-Stream ports of :mod:`.verilog_axis`.

Conv layers are computed over positions in time instead of unrolled in space: pixels arrive
in raster order, and each conv layer is one instance of its cell (the IR's conv block: one
gate tree per output channel) behind a sliding window over its zero-padded input
(``dl_scan``: line buffers and window as one shift chain, one scan step per cycle), so a layer
costs its cell plus ``(KH-1)*(W+2P)+KW`` positions of flip-flops whatever the image size.  OR
pooling happens in the stream (``dl_orpool``).  The first op that is not a conv block or an
OR pool starts the head: the last stream is gathered into one register (``dl_collect``), the
remaining layers (the dense ones) are unrolled logic (``difflogic_net_dense``, pipelined with
``--pipeline``), and their outputs are loaded into a shift register and counted per class
over ``F`` cycles, ``outputs per class / F`` bits per class per cycle (``dl_count``: F is the
fold factor of the head, and must divide the outputs per class); a rotation of the class
counts past one comparator then gives the first maximum.

Dense layers stay unrolled: their wiring is arbitrary, so time-multiplexing a dense layer's
gates over fewer gate instances needs a multiplexer per operand, which costs more LUTs than
the gates it saves; only memory-based gate evaluation would fold them (not done).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compiler.ir import GateBlock, Netlist, OrPool
from . import verilog as V
from . import verilog_axis as A

#: Result queue slots of the streamed form (one image is in the head at a time).
RESULT_QUEUE = 2


@dataclass
class Plan:
    """What the streamed form computes where: ``stages`` (conv blocks and OR pools, in
    stream order), the shape of the last stream, the head's ops, and the head's fold."""
    stages: list
    stream_shape: tuple       # (K, H, W) of the stream the collector gathers
    head_ops: list
    group: int                # outputs per class
    fold: int                 # F: cycles of the per-class count
    scan_cycles: list         # scan steps per image of each stage (pools: positions)


def plan(netlist: Netlist, fmt: A.StreamFormat, fold=None) -> Plan:
    """Split the netlist into stream stages and head, and check the fold factor."""
    shape = (fmt.pixel_bits, fmt.height, fmt.cols)
    stages, cycles, i = [], [], 0
    for i, op in enumerate(netlist.ops):
        if isinstance(op, GateBlock) and op.kind == "conv":
            check_conv(op, shape)
            hp, wp = shape[1] + 2 * op.padding, shape[2] + 2 * op.padding
            cycles.append(hp * wp)
        elif isinstance(op, OrPool):
            if tuple(op.in_shape) != shape or min(op.out_shape[1:]) < 1:
                raise ValueError(f"OrPool expects in_shape {op.in_shape}, the stream is {shape}")
            cycles.append(shape[1] * shape[2])
        else:
            break
        stages.append(op)
        shape = tuple(op.out_shape)
    else:
        i = len(netlist.ops)
    k, feats = netlist.head.k, netlist.head.in_features
    if k < 1 or feats % k:
        raise ValueError(f"GroupSum(k={k}) does not divide its {feats} inputs")
    group = feats // k
    budget = max([fmt.beats, *cycles]) - k - 4
    return Plan(stages, shape, list(netlist.ops[i:]), group, check_fold(fold, group, k, budget),
                cycles)


def check_conv(op: GateBlock, shape: tuple) -> None:
    if tuple(op.in_shape) != shape:
        raise ValueError(f"{op.name or 'conv'} block expects in_shape {op.in_shape}, the stream "
                         f"is {shape}")
    op.validate()
    lv = np.asarray(op.leaves, dtype=np.int64).reshape(-1, 3)
    kh, kw = op.kernel_size
    if len(lv) and (lv[:, 0].min() < 0 or lv[:, 0].max() >= shape[0] or lv[:, 1].min() < 0
                    or lv[:, 1].max() >= kh or lv[:, 2].min() < 0 or lv[:, 2].max() >= kw):
        raise ValueError(f"{op.name or 'conv'} block: a leaf lies outside the {shape[0]} channels "
                         f"x {kh}x{kw} kernel")
    if min(op.out_shape[1:]) < 1:
        raise ValueError(f"{op.name or 'conv'} block has no output positions")


def check_fold(fold, group: int, k: int, budget: int) -> int:
    """The head's fold factor: given, it must divide ``group`` (the outputs per class); None or
    "auto": the largest divisor that keeps the head within ``budget`` cycles per image."""
    divs = [d for d in range(1, group + 1) if group % d == 0]
    if fold is None or fold == "auto":
        return max([d for d in divs if d <= budget], default=1)
    if isinstance(fold, bool) or not isinstance(fold, int) or fold < 1 or group % fold:
        shown = ", ".join(map(str, divs[:12])) + (", ..." if len(divs) > 12 else "")
        raise ValueError(f"--fold {fold!r}: the fold factor must divide the {group} outputs per "
                         f"class (GroupSum k={k}); use one of {shown}")
    return fold


# --------------------------------------------------------------------------- generated modules
def comb_module(name: str, g: V.GateGraph, outs: list, n_in: int, what: str) -> tuple:
    """A combinational module ``name`` (x[n_in] -> y[len(outs)]) of graph ``g``'s ``outs``;
    returns (text, live gates)."""
    net = V.compact(g, [], [outs], n_network_nodes=g.n_nodes, num_classes=1, score_width=1,
                    class_width=1, meta={})
    body = V.render_gates(net, 0, f"  // {net.n_gates} gates: {what}")
    y = A.concat([body.out(l) for l in reversed(net.score_lits[0])])
    text = [f"module {name} (", f"    input  wire [{n_in - 1}:0] x,",
            f"    output wire [{len(outs) - 1}:0] y", ");", *body.lines,
            f"  assign y = {y};", "endmodule", ""]
    return "\n".join(text), net.n_gates


def cell_module(op: GateBlock, name: str, simplify: bool) -> tuple:
    g = V.GateGraph(op.n_leaves, simplify=simplify)
    outs = V.eval_cell(g, V.cell_lists(op), [g.input_lit(i) for i in range(op.n_leaves)])
    return comb_module(name, g, outs, max(1, op.n_leaves),
                       f"the cell of {op.name or 'a conv layer'}, one tree per output channel")


def pop_module(cb: int, pw: int, simplify: bool) -> tuple:
    g = V.GateGraph(cb, simplify=simplify)
    outs = V.popcount(g, [g.input_lit(i) for i in range(cb)], pw)
    return comb_module("difflogic_net_pop", g, outs, cb, f"popcount of {cb} bits")


def dense_module(netlist: Netlist, p: Plan, pipeline: int, simplify: bool) -> tuple:
    """``difflogic_net_dense``: the head's layers as gates over the gathered stream (flattened
    (K, H, W)), outputs in the chunk order of dl_count; returns (text, gates, latency)."""
    n_in = int(np.prod(p.stream_shape))
    g = V.GateGraph(n_in, simplify=simplify)
    sub = Netlist(p.stream_shape, p.head_ops, netlist.head)
    outs = V.flatten_ops(g, sub).tolist()
    k, cb = netlist.head.k, p.group // p.fold
    order = [outs[j * p.group + f * cb + i] for f in range(p.fold) for j in range(k)
             for i in range(cb)]
    net = V.compact(g, [], [order], n_network_nodes=g.n_nodes, num_classes=1, score_width=1,
                    class_width=1, meta={})
    body = V.render_gates(net, pipeline, f"  // {net.n_gates} gates: the dense layers")
    ports = (["    input  wire clk,", "    input  wire rst,", "    input  wire in_valid,",
              "    output wire out_valid,"] if pipeline else [])
    y = A.concat([body.out(l) for l in reversed(net.score_lits[0])])
    text = ["module difflogic_net_dense (", *ports, f"    input  wire [{n_in - 1}:0] x,",
            f"    output wire [{len(order) - 1}:0] y", ");", *body.lines, f"  assign y = {y};",
            "endmodule", ""]
    return "\n".join(text), net.n_gates, body.latency


# --------------------------------------------------------------------------- the stream
def mask(bits) -> str:
    return f"{len(bits)}'b" + "".join("1" if b else "0" for b in reversed(bits))


def due_mask(n: int, k: int, s: int, out: int) -> list:
    """Scan rows (columns) after which a window ends at an output position."""
    return [r >= k - 1 and (r - k + 1) % s == 0 and (r - k + 1) // s < out for r in range(n)]


def conv_stage(i: int, op: GateBlock, src: str, dst: str) -> list[str]:
    """Scan + cell + register slice of conv block ``op`` from stream ``src`` to ``dst``."""
    cin, h, w = op.in_shape
    kh, kw = op.kernel_size
    s, pd = op.stride, op.padding
    kout, ho, wo = op.out_shape
    hp, wp = h + 2 * pd, w + 2 * pd
    length = (kh - 1) * wp + kw

    row_due = due_mask(hp, kh, s, ho)
    col_due = due_mask(wp, kw, s, wo)
    row_in = [pd <= r < pd + h for r in range(hp)]
    col_in = [pd <= c < pd + w for c in range(wp)]
    lv = np.asarray(op.leaves, dtype=np.int64).reshape(-1, 3).tolist()
    taps = [((kh - 1 - dy) * wp + (kw - 1 - dx)) * cin + c for c, dy, dx in lv]
    leaves = A.concat([f"chain{i}[{t}]" for t in reversed(taps)]) if taps else "1'b0"
    return [
        f"  // ---- stage {i}: {op.name or 'conv'}: ({cin},{h},{w}) -> ({kout},{ho},{wo}), "
        f"kernel {kh}x{kw}, stride {s}, padding {pd}; {hp * wp} scan steps per image",
        f"  wire [{length * cin - 1}:0] chain{i};",
        f"  wire win_valid{i}, win_ready{i};",
        f"  dl_scan #(.CIN({cin}), .HP({hp}), .WP({wp}), .LEN({length}),",
        f"    .ROW_IN({mask(row_in)}), .ROW_DUE({mask(row_due)}),",
        f"    .COL_IN({mask(col_in)}), .COL_DUE({mask(col_due)})) scan{i} (",
        f"    .clk(aclk), .rst(rst), .in_data({src}_data), .in_valid({src}_valid),",
        f"    .in_ready({src}_ready), .chain(chain{i}), .win_valid(win_valid{i}),",
        f"    .win_ready(win_ready{i}));",
        f"  wire [{kout - 1}:0] cell{i}_y;",
        f"  difflogic_net_conv{i} cell{i} (.x({leaves}), .y(cell{i}_y));",
        f"  dl_pipe #(.W({kout})) pipe{i} (.clk(aclk), .rst(rst), .in_data(cell{i}_y),",
        f"    .in_valid(win_valid{i}), .in_ready(win_ready{i}), .out_data({dst}_data),",
        f"    .out_valid({dst}_valid), .out_ready({dst}_ready));"]


def pool_stage(i: int, op: OrPool, src: str, dst: str) -> list[str]:
    k, h, w = op.in_shape
    return [f"  // ---- stage {i}: OR pool {op.size}x{op.size}: ({k},{h},{w}) -> {tuple(op.out_shape)}",
            f"  dl_orpool #(.K({k}), .H({h}), .W({w}), .Q({op.size})) pool{i} (.clk(aclk), "
            ".rst(rst),",
            f"    .in_data({src}_data), .in_valid({src}_valid), .in_ready({src}_ready),",
            f"    .out_data({dst}_data), .out_valid({dst}_valid), .out_ready({dst}_ready));"]


def stream_wires(name: str, width: int) -> list[str]:
    return [f"  wire [{width - 1}:0] {name}_data;", f"  wire {name}_valid, {name}_ready;"]


def pixel_front(fmt: A.StreamFormat) -> list[str]:
    """Beats -> pixels (dl_gearbox) -> encoded pixels: stream s0 of C*T bits."""
    c, e = fmt.channels, fmt.elem_bits
    cw = A.chan_width(fmt)
    enc = [A.encode_expr(fmt, f"pix[{ch * e + e - 1}:{ch * e}]", f"{cw}'d{ch}")
           for ch in reversed(range(c))]
    return [*A.encoder_function(fmt), "  // ---- pixels: beats -> one pixel per cycle -> encoded",
            f"  wire [{c * e - 1}:0] pix;",
            *stream_wires("s0", fmt.pixel_bits),
            f"  dl_gearbox #(.E({e}), .P({fmt.lanes}), .C({c}), .LASTN({fmt.last_lanes})) gear (",
            "    .clk(aclk), .rst(rst), .b_data(b_data), .b_valid(b_go), .b_ready(ready_in),",
            "    .b_last(b_last), .p_data(pix), .p_valid(s0_valid), .p_ready(s0_ready));",
            f"  assign s0_data = {A.concat(enc)};"]


def head_lines(netlist: Netlist, p: Plan, src: str, dense_latency: int) -> list[str]:
    """Gather the last stream, launch it into the dense logic, count and compare (dl_count)."""
    kf, hf, wf = p.stream_shape
    n = hf * wf
    k = netlist.head.k
    cb = p.group // p.fold
    sw, cw = max(1, p.group.bit_length()), max(1, (k - 1).bit_length())
    feats = [f"feat[{pos * kf + ch}]" for ch in range(kf) for pos in range(n)]
    clocked = (".clk(aclk), .rst(rst), .in_valid(launch), .out_valid(y_valid), "
               if dense_latency else "")
    return [
        f"  // ---- head: gather {n} positions x {kf} bits, dense logic, count over {p.fold} "
        "cycles",
        f"  wire [{n * kf - 1}:0] feat;",
        "  wire feat_full, head_busy, y_valid;",
        f"  wire launch = feat_full && !head_busy && (outq_count < {RESULT_QUEUE});",
        f"  dl_collect #(.K({kf}), .N({n})) collect (.clk(aclk), .rst(rst), .in_data({src}_data),",
        f"    .in_valid({src}_valid), .in_ready({src}_ready), .data(feat), .full(feat_full),",
        "    .take(launch));",
        f"  wire [{k * p.group - 1}:0] y;",
        *([] if dense_latency else ["  assign y_valid = launch;"]),
        f"  difflogic_net_dense dense ({clocked}.x({A.concat(list(reversed(feats)))}), .y(y));",
        f"  wire [{k * sw - 1}:0] head_scores;",
        f"  wire [{cw - 1}:0] head_class;",
        f"  dl_count #(.NCLS({k}), .F({p.fold}), .CB({cb}), .PW({cb.bit_length()}), .SW({sw}), "
        f".CW({cw})) count (",
        "    .clk(aclk), .rst(rst), .start(launch), .y(y), .y_valid(y_valid), .busy(head_busy),",
        "    .res_valid(res_push), .scores(head_scores), .class_idx(head_class));"]


# --------------------------------------------------------------------------- the top
def folded_rtl(netlist: Netlist, fmt: A.StreamFormat, fold, pipeline: int, scores: bool,
               simplify: bool = True) -> tuple:
    """(RTL text, sidecar) of the streamed form."""
    p = plan(netlist, fmt, fold)
    k = netlist.head.k
    sw, cw = max(1, p.group.bit_length()), max(1, (k - 1).bit_length())
    modules, cell_gates = [], []
    lines = A.front_end(fmt, A.FOLD_FRAMES_IN_FLIGHT, RESULT_QUEUE) + pixel_front(fmt)
    for i, op in enumerate(p.stages):
        src, dst = f"s{i}", f"s{i + 1}"
        lines += stream_wires(dst, op.out_shape[0])
        if isinstance(op, OrPool):
            lines += pool_stage(i, op, src, dst)
            continue
        text, n = cell_module(op, f"difflogic_net_conv{i}", simplify)
        modules.append(text)
        cell_gates.append(n)
        lines += conv_stage(i, op, src, dst)
    dense, dense_gates, dense_lat = dense_module(netlist, p, pipeline, simplify)
    cb = p.group // p.fold
    pop, pop_gates = pop_module(cb, cb.bit_length(), simplify)
    lines += head_lines(netlist, p, f"s{len(p.stages)}", dense_lat)
    lines += A.back_end(A.result_width(cw, k, sw, scores), -(-A.result_width(cw, k, sw, scores)
                        // 8) * 8, RESULT_QUEUE,
                        "{head_scores, head_class}" if scores else "head_class")
    timing = stream_timing(fmt, p, dense_lat, k)
    gates = sum(cell_gates) + dense_gates + k * pop_gates
    out_w = -(-A.result_width(cw, k, sw, scores) // 8) * 8
    form = (f"streamed: {sum(isinstance(s, GateBlock) for s in p.stages)} conv layers over "
            f"positions, dense head unrolled, class counts over {p.fold} cycles")
    extra = [f"// gates: {gates} ({sum(cell_gates)} in conv cells {cell_gates}, {dense_gates} "
             f"dense, {k} x {pop_gates} popcount); dense latency {dense_lat} cycles"]
    head = A.header(A.model_name(netlist.meta), fmt, form, timing, cw, sw, k, scores,
                    extra)
    top = [head, "`timescale 1ns/1ps", *A.module_ports(fmt, out_w), *lines, "endmodule", ""]
    side = {"top": V.TOP, "inputs": netlist.n_inputs, "classes": k, "gates": gates,
            "network_gates": sum(cell_gates) + dense_gates, "head_gates": k * pop_gates,
            "cell_gates": cell_gates, "dense_gates": dense_gates, "fold": p.fold,
            "pipeline": pipeline, "latency": dense_lat, "class_width": cw, "score_width": sw,
            "vectors": 0, "meta": V.export_meta(dict(netlist.meta or {})), "out_width": out_w,
            "tie_break": "first maximum (torch.argmax)"}
    side.update(A.stream_sidecar(fmt, "streamed", timing, scores))
    return "\n".join(top) + "\n" + "\n".join(modules + [dense, pop]), side


def stream_timing(fmt: A.StreamFormat, p: Plan, dense_latency: int, k: int) -> dict:
    """Cycles per image and latency of the streamed form, from :func:`cycle_model` run on
    back-to-back images with no stalls (the test bench's ``+nostall`` measures the same)."""
    return cycle_model(fmt, p, dense_latency, k, images=4)


# --------------------------------------------------------------------------- cycle model
class _Pipe:
    """dl_pipe's control: v0 (output valid), v1 (skid full)."""

    def __init__(self):
        self.v0 = self.v1 = False

    def step(self, in_valid: bool, out_ready: bool) -> None:
        if out_ready or not self.v0:
            if self.v1:
                self.v1 = False
            else:
                self.v0 = in_valid
        elif in_valid and not self.v1:
            self.v1 = True


class _Scan:
    """dl_scan's control + the register slice behind the cell."""

    def __init__(self, op: GateBlock):
        _, h, w = op.in_shape
        kh, kw = op.kernel_size
        pd, s = op.padding, op.stride
        self.hp, self.wp = h + 2 * pd, w + 2 * pd
        _, ho, wo = op.out_shape
        self.row_in = [pd <= r < pd + h for r in range(self.hp)]
        self.col_in = [pd <= c < pd + w for c in range(self.wp)]
        self.row_due, self.col_due = due_mask(self.hp, kh, s, ho), due_mask(self.wp, kw, s, wo)
        self.r = self.c = 0
        self.due = False
        self.pipe = _Pipe()

    def in_ready(self) -> bool:
        return self.row_in[self.r] and self.col_in[self.c] and (not self.due or not self.pipe.v1)

    def out_valid(self) -> bool:
        return self.pipe.v0

    def step(self, in_valid: bool, out_ready: bool) -> None:
        win_ready = not self.pipe.v1
        inside = self.row_in[self.r] and self.col_in[self.c]
        go = (not self.due or win_ready) and (not inside or in_valid)
        self.pipe.step(self.due, out_ready)
        if go:
            self.due = self.row_due[self.r] and self.col_due[self.c]
            self.c = (self.c + 1) % self.wp
            if self.c == 0:
                self.r = (self.r + 1) % self.hp
        elif win_ready:
            self.due = False


class _Pool:
    """dl_orpool's control."""

    def __init__(self, op: OrPool):
        _, self.h, self.w = op.in_shape
        self.q = op.size
        self.ho, self.wo = self.h // self.q, self.w // self.q
        self.i = self.j = self.qi = self.qj = 0
        self.pipe = _Pipe()

    def _emit(self) -> bool:
        keep = self.i < self.ho * self.q and self.j < self.wo * self.q
        return keep and self.qi == self.q - 1 and self.qj == self.q - 1

    def in_ready(self) -> bool:
        return not self._emit() or not self.pipe.v1

    def out_valid(self) -> bool:
        return self.pipe.v0

    def step(self, in_valid: bool, out_ready: bool) -> None:
        take = in_valid and self.in_ready()
        self.pipe.step(take and self._emit(), out_ready)
        if take:
            last_col = self.j == self.w - 1
            self.qj = 0 if self.qj == self.q - 1 or last_col else self.qj + 1
            self.j = 0 if last_col else self.j + 1
            if last_col:
                self.qi = 0 if self.qi == self.q - 1 or self.i == self.h - 1 else self.qi + 1
                self.i = 0 if self.i == self.h - 1 else self.i + 1


class _Head:
    """dl_collect's and dl_count's control, and the dense logic's valid chain."""

    def __init__(self, p: Plan, dense_latency: int, k: int):
        self.n_pos = p.stream_shape[1] * p.stream_shape[2]
        self.fold, self.k, self.lat = p.fold, k, dense_latency
        self.coll, self.full, self.state, self.f, self.j, self.y_at = 0, False, "IDLE", 0, 0, None

    def step(self, t: int, in_valid: bool, queued: int) -> bool:
        """One edge; ``queued``: results in the output queue.  Returns whether a result is
        pushed (dl_count's res_valid during cycle t)."""
        launch = self.full and self.state == "IDLE" and queued < RESULT_QUEUE
        y_valid = launch if self.lat == 0 else self.y_at == t
        load = y_valid and (self.state == "WAIT" or (self.state == "IDLE" and launch))
        res = self.state == "DONE"
        if in_valid and not self.full:
            self.coll = (self.coll + 1) % self.n_pos
            self.full = self.coll == 0
        elif launch:
            self.full = False
        if launch and self.lat:
            self.y_at = t + self.lat
        nxt = {"IDLE": ("COUNT" if load else "WAIT") if launch else "IDLE",
               "WAIT": "COUNT" if load else "WAIT",
               "COUNT": "ARG" if self.f == self.fold - 1 else "COUNT",
               "ARG": "DONE" if self.j == self.k - 1 else "ARG", "DONE": "IDLE"}[self.state]
        self.f = self.f + 1 if self.state == "COUNT" else 0
        self.j = self.j + 1 if self.state == "ARG" else 0
        self.state = nxt
        return res


def cycle_model(fmt: A.StreamFormat, p: Plan, dense_latency: int, k: int, images: int) -> dict:
    """Run the control of the streamed form (framer, gearbox, stages, collector, head, result
    queue; no data) cycle by cycle on ``images`` back-to-back images with s_axis_tvalid and
    m_axis_tready high; returns the last image's latency (edges from its last beat to its
    result) and the gap between the last two results, which is the throughput."""
    stages = [_Scan(op) if isinstance(op, GateBlock) else _Pool(op) for op in p.stages]
    head = _Head(p, dense_latency, k)
    passthrough = fmt.lanes == fmt.channels and fmt.last_lanes == fmt.lanes
    beat = gear_n = errq = outq = 0
    last_in, out, t = [], [], 0
    limit = (images + 2) * (max([fmt.beats, *p.scan_cycles]) + p.fold + k + dense_latency + 64)
    while len(out) < images and t < limit:
        # the handshakes of cycle t, from the registers
        p_ready = stages[0].in_ready() if stages else not head.full
        b_last = beat == fmt.beats - 1
        go = len(last_in) < images and not (b_last and errq == A.FOLD_FRAMES_IN_FLIGHT)
        if passthrough:
            take, p_valid = go and p_ready, go
        else:
            p_valid = gear_n >= fmt.channels
            rest = gear_n - fmt.channels * (p_valid and p_ready)
            take = go and rest < fmt.channels
        readies = [st.in_ready() for st in stages[1:]] + [not head.full]
        valids = [p_valid] + [st.out_valid() for st in stages]
        pop = outq > 0
        # the edge at the end of cycle t
        if take:
            beat = 0 if b_last else beat + 1
            if b_last:
                last_in.append(t)
        if not passthrough:
            gear_n = rest + (take and (fmt.last_lanes if b_last else fmt.lanes))
        for st, v, rdy in zip(stages, valids, readies):
            st.step(v, rdy)
        res = head.step(t, valids[-1], outq)
        if pop:
            out.append(t)
        errq += (take and b_last) - res
        outq += res - pop
        t += 1
    if len(out) < images:
        raise RuntimeError("cycle model of the streamed form: no result (a stalled pipeline)")
    return {"cycles_per_image": out[-1] - out[-2] if images > 1 else out[-1],
            "latency_cycles": out[-1] - last_in[images - 1]}
