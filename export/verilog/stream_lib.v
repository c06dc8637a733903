// difflogic stream library: the building blocks of the AXI4-Stream forms of a difflogic
// export (appended to difflogic_net.v by difflogic.backends.verilog_axis; do not edit there).
//
// Every stream below is valid/ready: a word moves on a rising edge where valid and ready are
// both high; valid never waits for ready, and no ready depends combinationally on a later
// stage's valid through more than one module.  rst is synchronous and active high; it clears
// every control register (counters, valid flags, FIFO pointers), never the data registers,
// which each image overwrites before they are read.
`timescale 1ns/1ps

// ---------------------------------------------------------------------------- dl_framer
// AXI4-Stream slave beats -> frames of exactly NBEATS beats.  A frame ends with tlast: one
// shorter than NBEATS is completed with zero beats (s_tready is low meanwhile), of one longer
// than NBEATS the extra beats are accepted and dropped up to its tlast; either way the frame's
// last beat carries b_err = 1, so every input frame yields exactly one result.
module dl_framer #(parameter W = 8, parameter NBEATS = 1) (
    input  wire clk, input wire rst,
    input  wire [W-1:0] s_tdata, input wire s_tvalid, output wire s_tready, input wire s_tlast,
    output wire [W-1:0] b_data, output wire b_valid, input wire b_ready,
    output wire b_last, output wire b_err
);
  localparam CW = (NBEATS > 1) ? $clog2(NBEATS) : 1;
  reg [CW-1:0] cnt;
  reg pad, drop;
  assign b_last = (cnt == NBEATS - 1);
  assign b_valid = pad || (!drop && s_tvalid);
  assign b_data = pad ? {W{1'b0}} : s_tdata;
  assign b_err = pad || (b_last && !s_tlast);
  assign s_tready = !rst && !pad && (drop || b_ready);
  always @(posedge clk) begin
    if (rst) begin
      cnt <= 0; pad <= 1'b0; drop <= 1'b0;
    end else if (drop) begin
      if (s_tvalid && s_tlast) drop <= 1'b0;
    end else if (b_valid && b_ready) begin
      cnt <= b_last ? {CW{1'b0}} : cnt + 1'b1;
      if (pad) begin
        if (b_last) pad <= 1'b0;
      end else if (b_last) drop <= !s_tlast;
      else if (s_tlast) pad <= 1'b1;
    end
  end
endmodule

// ---------------------------------------------------------------------------- dl_fifo
// A first-in first-out queue of D words (registers, no RAM): out_* show the oldest word.
module dl_fifo #(parameter W = 1, parameter D = 2) (
    input  wire clk, input wire rst,
    input  wire [W-1:0] in_data, input wire push,
    output wire [W-1:0] out_data, output wire out_valid, input wire pop,
    output reg  [$clog2(D+1)-1:0] count
);
  localparam AW = (D > 1) ? $clog2(D) : 1;
  reg [D*W-1:0] mem;
  reg [AW-1:0] rp, wp;
  assign out_valid = (count != 0);
  assign out_data = mem[rp*W +: W];
  always @(posedge clk) begin
    if (rst) begin
      rp <= 0; wp <= 0; count <= 0;
    end else begin
      if (push) wp <= (wp == D - 1) ? {AW{1'b0}} : wp + 1'b1;
      if (pop) rp <= (rp == D - 1) ? {AW{1'b0}} : rp + 1'b1;
      count <= count + push - pop;
    end
    if (push) mem[wp*W +: W] <= in_data;
  end
endmodule
