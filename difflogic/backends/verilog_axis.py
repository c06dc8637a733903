"""AXI4-Stream forms of the Verilog back end: ``--axis W`` (the unrolled network behind a
stream interface) and the streamed form ``--fold`` (:mod:`.verilog_fold`), and their test bench.

Both forms have the same top module ``difflogic_net``:

* ``aclk``; ``aresetn`` synchronous, active low, allowed at any time (mid-image too): it drops
  the frames and results in flight, and the next frame after it is processed normally.
* Slave stream ``s_axis_tdata[W-1:0]`` / ``tvalid`` / ``tready`` / ``tlast``: an image is its
  ``C*H*W`` input values in pixel-major raster order (value ``e = (h*W + w)*C + c``), ``E``
  bits each: 8-bit pixel values when the model has a thermometer encoder (encoded in the RTL,
  exactly as :func:`difflogic.compiler.encode_input` encodes uint8 images), else the input
  bits themselves.  Value ``e`` is at ``tdata[(e % P)*E +: E]`` of beat ``e // P`` (``P = W/E``
  values per beat; the last beat's unused bits are ignored) and ``tlast`` marks the image's
  last beat.  A frame of another length is completed with zeros (shorter) or cut (longer) and
  its result is flagged, so that every frame gives exactly one result.
* Master stream ``m_axis_tdata`` / ``tvalid`` / ``tready`` / ``tlast`` / ``tuser[0]``: one beat
  per image, ``tlast = 1``; ``tdata[CW-1:0]`` is the class index (the first maximum of the
  class counts, as ``torch.argmax``), with ``--scores`` ``tdata[CW + j*SW +: SW]`` is class
  ``j``'s count; ``tdata`` is padded with zeros to whole bytes; ``tuser[0]`` = 1 marks a
  frame that was not ``beats`` beats long.

Back-pressure on either side is honoured: results wait in a small queue, and no image enters
the network unless its result has a place there.  The throughput and latency in cycles are
stated in the RTL header and the sidecar (``cycles_per_image``, ``latency_cycles``) and
measured by the test bench with ``+nostall``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._resources import template
from ..compiler.ir import Netlist
from ..files import write_files
from . import verilog as V

#: Slots of the frame-error queue of the streamed form: frames whose last beat is in and whose
#: result is not out yet (the pipeline of conv layers holds at most two images at a time).
FOLD_FRAMES_IN_FLIGHT = 4


@dataclass(frozen=True)
class StreamFormat:
    """How an image travels on the slave stream (see the module docstring)."""
    width: int                # W: s_axis_tdata bits
    elem_bits: int            # E: 8 (pixel value, encoded in the RTL) or 1 (an input bit)
    channels: int             # C: values per pixel
    height: int
    cols: int
    thresholds: int           # T: encoded bits per value (1 without an encoder)
    cutoffs: tuple | None     # (C, T): bit t of channel c = value >= cutoffs[c][t] (256: never)

    @property
    def lanes(self) -> int:
        return self.width // self.elem_bits

    @property
    def elements(self) -> int:
        return self.channels * self.height * self.cols

    @property
    def beats(self) -> int:
        return -(-self.elements // self.lanes)

    @property
    def last_lanes(self) -> int:
        return self.elements - (self.beats - 1) * self.lanes

    @property
    def pixel_bits(self) -> int:
        """Encoded bits per pixel (the first conv layer's input channels)."""
        return self.channels * self.thresholds


def stream_format(netlist: Netlist, width) -> StreamFormat:
    """The slave stream of ``netlist`` at ``width`` bits per beat; a width that does not suit
    the input is a one-line ValueError naming the widths that do."""
    enc = netlist.encoder
    shape = tuple(enc.in_shape if enc is not None else netlist.input_shape)
    if len(shape) == 3:
        c, h, w = shape
    elif len(shape) == 1:   # a flat input: one pixel of C values, or F pixels of one bit
        c, h, w = (shape[0], 1, 1) if enc is not None else (1, 1, shape[0])
    else:
        raise ValueError(f"the AXI4-Stream forms need a (C, H, W) or flat input, got shape {shape}")
    e = 8 if enc is not None else 1
    bits = c * h * w * e
    what = (f"{c * h * w:,} pixel values x 8 bits" if e == 8 else f"{bits:,} input bits")
    if isinstance(width, bool) or not isinstance(width, int) or width <= 0 or width % 8:
        unit = ", each beat whole 8-bit pixel values" if e == 8 else ""
        raise ValueError(f"--axis must be a positive multiple of 8 (AXI4-Stream tdata is whole "
                         f"bytes{unit}), got {width!r}")
    if bits < 8:
        raise ValueError(f"the image is only {bits} input bits, less than one AXI4-Stream byte; "
                         "use the plain (non --axis) form")
    if width > bits:
        raise ValueError(f"--axis {width} is wider than the image ({what} = {bits:,} bits); "
                         f"use a multiple of 8 up to {bits // 8 * 8:,}")
    cut = None
    if enc is not None:
        cut = tuple(tuple(int(v) for v in row) for row in np.asarray(enc.u8_cutoffs))
    return StreamFormat(width, e, c, h, w, 1 if enc is None else int(enc.thresholds.shape[1]), cut)


# --------------------------------------------------------------------------- vectors
def stream_values(fmt: StreamFormat, n_inputs: int, bits) -> np.ndarray:
    """The stream values (N, C*H*W) in stream order of encoded input ``bits``: the pixel
    values whose encoding they are (exact inverse of the thermometer encoder; bits that no
    pixel value encodes are a ValueError), or the bits themselves without an encoder."""
    bits = V.check_input_bits(bits, n_inputs)
    n, c, t, h, w = bits.shape[0], fmt.channels, fmt.thresholds, fmt.height, fmt.cols
    b = bits.reshape(n, c, t, h, w).astype(np.int64)
    if fmt.cutoffs is None:
        vals = b[:, :, 0]
    else:
        cut = np.asarray(fmt.cutoffs, dtype=np.int64)[None, :, :, None, None]
        vals = np.where(b == 1, cut, 0).max(axis=2)
        if vals.max(initial=0) > 255 or not np.array_equal(vals[:, :, None] >= cut, b == 1):
            raise ValueError("the AXI4-Stream form streams 8-bit pixel values, and these input "
                             "bits are not the thermometer code of any; give encoded images "
                             "(difflogic.compiler.encode_input of uint8 images)")
    return vals.transpose(0, 2, 3, 1).reshape(n, -1)


def value_hex(fmt: StreamFormat, values: np.ndarray) -> str:
    """One hex number per image: value e at bits [e*E +: E]."""
    e = fmt.elem_bits
    bits = ((values[:, :, None] >> np.arange(e)) & 1).reshape(values.shape[0], -1)
    return V.hex_lines(bits.astype(np.uint8))


# --------------------------------------------------------------------------- RTL pieces
def chan_width(fmt: StreamFormat) -> int:
    return max(1, (fmt.channels - 1).bit_length())


def encoder_function(fmt: StreamFormat) -> list[str]:
    """``difflogic_encode(value, channel)``: the T thermometer bits of one pixel value (bit t =
    value >= cutoff), the Verilog of the model's encoder; empty without one."""
    if fmt.cutoffs is None:
        return []
    cw, t = chan_width(fmt), fmt.thresholds

    def bit(cut: int) -> str:
        return "1'b1" if cut <= 0 else "1'b0" if cut > 255 else f"(v >= 8'd{cut})"
    lines = [f"  function [{t - 1}:0] difflogic_encode;", "    input [7:0] v;",
             f"    input [{cw - 1}:0] ch;", "    begin", "      case (ch)"]
    for c, row in enumerate(fmt.cutoffs):
        bits = ", ".join(bit(row[i]) for i in reversed(range(t)))
        lines.append(f"        {cw}'d{c}: difflogic_encode = {{{bits}}};")
    return lines + [f"        default: difflogic_encode = {{{t}{{1'b0}}}};", "      endcase",
                    "    end", "  endfunction"]


def encode_expr(fmt: StreamFormat, value: str, channel: str) -> str:
    """The T encoded bits of ``value`` (E bits) of channel ``channel`` (an expression)."""
    return value if fmt.cutoffs is None else f"difflogic_encode({value}, {channel})"


def result_width(cw: int, k: int, sw: int, scores: bool) -> int:
    return cw + (k * sw if scores else 0)


def concat(bits: list[str], per_line: int = 12) -> str:
    """``{a, b, ...}`` over several lines (first = most significant)."""
    rows = [", ".join(bits[i:i + per_line]) for i in range(0, len(bits), per_line)]
    return "{" + ",\n      ".join(rows) + "}"


def module_ports(fmt: StreamFormat, out_w: int) -> list[str]:
    return ["module difflogic_net (", "    input  wire aclk,", "    input  wire aresetn,",
            f"    input  wire [{fmt.width - 1}:0] s_axis_tdata,", "    input  wire s_axis_tvalid,",
            "    output wire s_axis_tready,", "    input  wire s_axis_tlast,",
            f"    output wire [{out_w - 1}:0] m_axis_tdata,", "    output wire m_axis_tvalid,",
            "    input  wire m_axis_tready,", "    output wire m_axis_tlast,",
            "    output wire [0:0] m_axis_tuser", ");", "  wire rst = !aresetn;"]


def front_end(fmt: StreamFormat, frames: int, depth: int) -> list[str]:
    """The framer and the queue of frame errors (``frames`` slots).  Defines ``b_data``,
    ``b_last``, ``b_go`` (a beat is offered and, if it ends a frame, its error has a slot),
    ``take`` (a beat moves on), ``frame_done``, ``err_out`` (the oldest frame's error flag) and
    ``outq_count`` (results queued, of ``depth``); the form drives ``ready_in``, ``res_push``."""
    w, nb = fmt.width, fmt.beats
    return [
        "  // ---- input frames: exactly BEATS beats each (dl_framer), errors queued in order",
        f"  wire [{w - 1}:0] b_data;",
        "  wire b_valid, b_ready, b_last, b_err, ready_in, res_push, err_out;",
        f"  wire [{frames.bit_length() - 1}:0] errq_count;",
        f"  wire [{depth.bit_length() - 1}:0] outq_count;",
        f"  dl_framer #(.W({w}), .NBEATS({nb})) framer (.clk(aclk), .rst(rst),",
        "    .s_tdata(s_axis_tdata), .s_tvalid(s_axis_tvalid), .s_tready(s_axis_tready),",
        "    .s_tlast(s_axis_tlast), .b_data(b_data), .b_valid(b_valid), .b_ready(b_ready),",
        "    .b_last(b_last), .b_err(b_err));",
        f"  wire room = !(b_last && errq_count == {frames});",
        "  wire b_go = b_valid && room;",
        "  assign b_ready = ready_in && room;",
        "  wire take = b_go && ready_in;",
        "  wire frame_done = take && b_last;",
        f"  dl_fifo #(.W(1), .D({frames})) errq (.clk(aclk), .rst(rst), .in_data(b_err),",
        "    .push(frame_done), .out_data(err_out), .out_valid(), .pop(res_push),",
        "    .count(errq_count));"]


def back_end(res_w: int, out_w: int, depth: int, result: str) -> list[str]:
    """The result queue (``depth`` slots) feeding m_axis; ``result`` is the {scores, class}
    expression pushed with ``res_push``."""
    pad = f"{{{out_w - res_w}{{1'b0}}}}, " if out_w > res_w else ""
    return [
        "  // ---- results: {error, scores, class_idx} queue -> m_axis",
        f"  wire [{res_w}:0] q_data;",
        f"  dl_fifo #(.W({res_w + 1}), .D({depth})) outq (.clk(aclk), .rst(rst),",
        f"    .in_data({{err_out, {result}}}), .push(res_push), .out_data(q_data),",
        "    .out_valid(m_axis_tvalid), .pop(m_axis_tvalid && m_axis_tready), .count(outq_count));",
        f"  assign m_axis_tdata = {{{pad}q_data[{res_w - 1}:0]}};",
        f"  assign m_axis_tuser = q_data[{res_w}];",
        "  assign m_axis_tlast = 1'b1;"]


def core_module(net: V.VerilogNet, pipeline: int, name: str) -> tuple[str, V.GateBody]:
    """The unrolled network (gates + popcount/argmax head) as module ``name``: ``x`` in,
    ``scores`` and ``class_idx`` out; pipelined: ``clk``, ``rst``, ``in_valid``, ``out_valid``."""
    body = V.render_gates(net, pipeline, f"  // {net.n_gates} gates ({net.n_network_gates} "
                                         f"network, {net.n_gates - net.n_network_gates} head)")
    ports = (["    input  wire clk,", "    input  wire rst,", "    input  wire in_valid,",
              "    output wire out_valid,"] if pipeline else [])
    k, sw = net.num_classes, net.score_width
    lines = [f"module {name} (", *ports, f"    input  wire [{net.n_inputs - 1}:0] x,",
             f"    output wire [{k * sw - 1}:0] scores,",
             f"    output wire [{net.class_width - 1}:0] class_idx", ");", *body.lines,
             f"  assign class_idx = {concat([body.out(l) for l in reversed(net.class_lits)])};",
             "  assign scores = " + concat([body.out(l) for s in reversed(net.score_lits)
                                            for l in reversed(s)]) + ";", "endmodule", ""]
    return "\n".join(lines), body


def input_index(fmt: StreamFormat, e: int, t: int) -> int:
    """The encoded input bit (flattened (C*T, H, W)) of bit ``t`` of stream value ``e``."""
    pix, c = divmod(e, fmt.channels)
    h, w = divmod(pix, fmt.cols)
    return ((c * fmt.thresholds + t) * fmt.height + h) * fmt.cols + w


# --------------------------------------------------------------------------- unrolled form
def unrolled_body(net: V.VerilogNet, fmt: StreamFormat, latency: int, scores: bool) -> dict:
    """The AXI4-Stream shell of the unrolled network: beats are encoded lane by lane and
    shifted into an image register; a full image enters ``difflogic_net_core`` when its
    result has a place in the queue.  Returns lines and the stated timing."""
    t, p, nb = fmt.thresholds, fmt.lanes, fmt.beats
    depth = max(2, -(-(latency + 1) // nb) + 1)   # results in flight at full throughput, + 1
    img = nb * p * t
    lines = front_end(fmt, depth + 1, depth) + encoder_function(fmt)
    lines += lane_encoders(fmt)
    shift = f"{{enc, img[{img - 1}:{p * t}]}}" if nb > 1 else "enc"
    ow = depth.bit_length()
    lines += [
        "  // ---- image register: beat b's lanes land at [b*P*T +: P*T]",
        f"  reg [{img - 1}:0] img;",
        "  reg pending;                         // a whole image waits in img",
        f"  reg [{ow - 1}:0] outstanding;        // images launched, result not yet taken",
        f"  wire launch = pending && (outstanding < {depth});",
        "  assign ready_in = !pending || launch;",
        "  always @(posedge aclk) begin",
        f"    if (take) img <= {shift};",
        "    if (rst) begin",
        "      pending <= 1'b0;",
        "      outstanding <= 0;",
        "    end else begin",
        "      pending <= frame_done || (pending && !launch);",
        "      outstanding <= outstanding + launch - (m_axis_tvalid && m_axis_tready);",
        "    end",
        "  end"]
    src = [0] * net.n_inputs
    for el in range(fmt.elements):
        for b in range(t):
            src[input_index(fmt, el, b)] = el * t + b
    lines.append(f"  wire [{net.n_inputs - 1}:0] x = "
                 + concat([f"img[{i}]" for i in reversed(src)]) + ";")
    sw, k, cw = net.score_width, net.num_classes, net.class_width
    lines += [f"  wire [{k * sw - 1}:0] core_scores;", f"  wire [{cw - 1}:0] core_class;",
              "  wire core_valid;"]
    clocked = (".clk(aclk), .rst(rst), .in_valid(launch), .out_valid(core_valid), "
               if latency else "")
    if not latency:
        lines.append("  assign core_valid = launch;")
    lines += [f"  difflogic_net_core core ({clocked}.x(x), .scores(core_scores), "
              ".class_idx(core_class));", "  assign res_push = core_valid;"]
    res_w = result_width(cw, k, sw, scores)
    result = "{core_scores, core_class}" if scores else "core_class"
    lines += back_end(res_w, -(-res_w // 8) * 8, depth, result)
    return {"lines": lines, "cycles_per_image": nb, "latency_cycles": latency + 2,
            "result_queue": depth}


def lane_encoders(fmt: StreamFormat) -> list[str]:
    """``enc``: the T encoded bits of each of the beat's P lanes.  A lane's channel is fixed
    when P is a multiple of C; otherwise it follows ``c0``, the channel of lane 0."""
    t, p, c, e = fmt.thresholds, fmt.lanes, fmt.channels, fmt.elem_bits
    cw = chan_width(fmt)
    lines = [f"  wire [{p * t - 1}:0] enc;"]
    varying = fmt.cutoffs is not None and p % c != 0
    if varying:
        nxt = " : ".join(f"(c0 == {cw}'d{v}) ? {cw}'d{(v + p) % c}" for v in range(c - 1))
        lines += [f"  reg [{cw - 1}:0] c0;   // channel of lane 0 in this beat",
                  "  always @(posedge aclk)",
                  f"    if (rst) c0 <= 0; else if (take) c0 <= b_last ? {cw}'d0 : "
                  f"{nxt} : {cw}'d{(c - 1 + p) % c};"]
    for lane in range(p):
        if varying:
            ch = " : ".join(f"(c0 == {cw}'d{v}) ? {cw}'d{(v + lane) % c}" for v in range(c - 1))
            ch = f"{ch} : {cw}'d{(c - 1 + lane) % c}"
        else:
            ch = f"{cw}'d{lane % c}"
        lines.append(f"  assign enc[{lane * t + t - 1}:{lane * t}] = "
                     f"{encode_expr(fmt, f'b_data[{lane * e + e - 1}:{lane * e}]', ch)};")
    return lines


def model_name(meta: dict) -> str:
    """The model's name for a header comment (the netlist's meta: "name", else "model")."""
    return (meta or {}).get("name", (meta or {}).get("model", "unnamed"))


def header(net_name: str, fmt: StreamFormat, form: str, timing: dict, cw: int, sw: int, k: int,
           scores: bool, extra=()) -> str:
    """The comment block that opens an AXI4-Stream export: interface, timing, form."""
    e, p = fmt.elem_bits, fmt.lanes
    what = ("8-bit pixel values, thermometer-encoded in the RTL (bit t of channel c = value >= "
            "cutoff[c][t], as the model's Thresholds layer on uint8 images)"
            if fmt.cutoffs is not None else "input bits")
    res = f"tdata[{cw - 1}:0] = class index (first maximum of the class counts, as torch.argmax)"
    if scores:
        res += f", tdata[{cw} + j*{sw} +: {sw}] = class j's count (j < {k})"
    return "\n".join([
        "// difflogic_net: difflogic gate network with AXI4-Stream ports, generated by",
        "// difflogic.backends.verilog_axis (do not edit).",
        f"// model: {net_name}; form: {form}",
        "// clock aclk; aresetn synchronous, active low, allowed at any time (mid-image too): it "
        "drops the frames and results in flight.",
        f"// s_axis: {fmt.width}-bit beats; an image is {fmt.channels}x{fmt.height}x{fmt.cols} "
        f"(C x H x W) {what},",
        f"//   in pixel-major raster order, value e = (h*{fmt.cols} + w)*{fmt.channels} + c at "
        f"tdata[(e % {p})*{e} +: {e}] of beat e / {p};",
        f"//   {fmt.beats} beats per image, tlast on the last (its unused bits are ignored).  A "
        "frame of another length is zero-filled or cut to that and flagged with m_axis_tuser.",
        f"// m_axis: one beat per image, tlast = 1; {res}; m_axis_tuser[0] = 1: the frame had "
        "the wrong length.",
        f"// throughput: one image every {timing['cycles_per_image']} cycles (s_axis_tvalid and "
        "m_axis_tready held high)",
        f"// latency: the result beat moves {timing['latency_cycles']} clock edges after the edge "
        "that moved the image's last beat (m_axis_tready high)", *extra, ""])


# --------------------------------------------------------------------------- export
def testbench(fmt: StreamFormat, res_w: int, out_w: int, cw: int, n_vec: int,
              timing: dict) -> str:
    patience = 4 * (timing["cycles_per_image"] + timing["latency_cycles"]) + 2000
    return V.fill_template(template("verilog/tb_axis.v.in").read_text(), TOP=V.TOP,
                           W=fmt.width, BEATS=fmt.beats, OUT_W=out_w, CHECK_W=res_w,
                           N_VECTORS=max(n_vec, 1), PATIENCE=patience, CLASS_W=cw)


def write_stream(out_dir: Path, rtl: str, side: dict, fmt: StreamFormat, *, values, expected,
                 scores: bool) -> dict:
    """Write an AXI4-Stream export: RTL (+ the stream library), sidecar, test bench, vectors
    of stream values and their expected {scores, class_idx}, run_sim.sh, synth.ys."""
    cw, sw, k = side["class_width"], side["score_width"], side["classes"]
    res_w = result_width(cw, k, sw, scores)
    out_w = -(-res_w // 8) * 8
    libs = ["stream_lib.v"] + (["fold_lib.v"] if side["form"] == "streamed" else [])
    files = {f"{V.TOP}.v": "\n".join([rtl, *(template(f"verilog/{n}").read_text() for n in libs)])}
    if values is not None:
        side["vectors"] = int(values.shape[0])
        files["vectors_in.hex"] = value_hex(fmt, values)
        if expected is not None:
            cls = np.argmax(expected, axis=1)
            files["vectors_out.hex"] = V.hex_lines(V.output_bits(expected, cls, cw, sw, scores))
    files["tb.v"] = testbench(fmt, res_w, out_w, cw, side["vectors"], side)
    files["run_sim.sh"] = template("verilog/run_sim.sh").read_text()
    files["synth.ys"] = V.synth_script(lut=6)
    side["files"] = sorted([*files, f"{V.TOP}.json"])
    files[f"{V.TOP}.json"] = json.dumps(side, indent=2, default=str) + "\n"
    write_files(out_dir, files, executable=("run_sim.sh",), stale=V.previous_files(out_dir))
    return dict(side, dir=str(out_dir))


def stream_sidecar(fmt: StreamFormat, form: str, timing: dict, scores: bool) -> dict:
    return {"interface": "axi4-stream", "form": form, "axis_width": fmt.width,
            "beats_per_image": fmt.beats, "stream_value_bits": fmt.elem_bits,
            "stream_order": "pixel-major raster: value (h*W + w)*C + c", "scores": bool(scores),
            **timing}


def unrolled_rtl(net: V.VerilogNet, fmt: StreamFormat, pipeline: int, scores: bool) -> tuple:
    """(RTL text, sidecar) of the unrolled network behind AXI4-Stream ports."""
    core, body = core_module(net, pipeline, "difflogic_net_core")
    shell = unrolled_body(net, fmt, body.latency, scores)
    timing = {k: shell[k] for k in ("cycles_per_image", "latency_cycles", "result_queue")}
    cw, sw, k = net.class_width, net.score_width, net.num_classes
    out_w = -(-result_width(cw, k, sw, scores) // 8) * 8
    head = header(model_name(net.meta), fmt, "unrolled network, one image per "
                  f"{fmt.beats} beats", timing, cw, sw, k, scores,
                  [f"// gates: {net.n_gates} ({net.n_network_gates} network + "
                   f"{net.n_gates - net.n_network_gates} popcount/argmax head); core latency "
                   f"{body.latency} cycles ({f'a register bank every {pipeline} gate levels' if pipeline else 'combinational'})"])
    top = [head, "`timescale 1ns/1ps", *module_ports(fmt, out_w), *shell["lines"], "endmodule", ""]
    side = V.sidecar_fields(net, pipeline, scores)
    side.update(latency=body.latency, registers=body.registers)
    side.update(stream_sidecar(fmt, "unrolled", timing, scores), out_width=out_w)
    return "\n".join(top) + "\n" + core, side


def default_width(netlist: Netlist) -> int:
    """The stream width of the streamed form when --axis is not given: one pixel per beat,
    rounded up to whole bytes."""
    enc = netlist.encoder
    shape = tuple(enc.in_shape if enc is not None else netlist.input_shape)
    per_pixel = shape[0] * 8 if enc is not None else (shape[0] if len(shape) == 3 else 1)
    return -(-per_pixel // 8) * 8


def stream_design(netlist: Netlist, *, axis=None, fold=None, pipeline: int = 0,
                  scores: bool = False, simplify: bool = True) -> tuple:
    """(format, RTL text, sidecar) of an AXI4-Stream form: ``fold`` None = the unrolled
    network (``axis`` required), "auto" or F = the streamed form.  Every bad option is a
    ValueError before anything is built."""
    if fold is None and axis is None:
        raise ValueError("an AXI4-Stream form needs --axis W (or --fold)")
    fmt = stream_format(netlist, default_width(netlist) if axis is None else axis)
    if fold is not None:
        from . import verilog_fold
        rtl, side = verilog_fold.folded_rtl(netlist, fmt, fold, pipeline, scores, simplify)
    else:
        rtl, side = unrolled_rtl(V.build(netlist, simplify=simplify), fmt, pipeline, scores)
    return fmt, rtl, side


def check_stream(netlist: Netlist, axis=None, fold=None) -> None:
    """The one-line errors of :func:`stream_design` (width, fold), without building anything."""
    if fold is None and axis is None:
        raise ValueError("an AXI4-Stream form needs --axis W (or --fold)")
    fmt = stream_format(netlist, default_width(netlist) if axis is None else axis)
    if fold is not None:
        from . import verilog_fold
        verilog_fold.plan(netlist, fmt, fold)
