// difflogic streamed-form library: the modules of the streamed form (--fold) only (appended to
// difflogic_net.v after stream_lib.v by difflogic.backends.verilog_fold; do not edit there).
// Conventions as in stream_lib.v.
`timescale 1ns/1ps

// ---------------------------------------------------------------------------- dl_gearbox
// Beats of P elements (E bits each; the frame's last beat holds LASTN of them) -> pixels of
// C elements, at most one pixel per cycle.  A beat is taken when fewer than C elements are
// left after this cycle's pixel, so the buffer holds P + C - 1 elements.
module dl_gearbox #(parameter E = 8, parameter P = 1, parameter C = 1, parameter LASTN = 1) (
    input  wire clk, input wire rst,
    input  wire [P*E-1:0] b_data, input wire b_valid, output wire b_ready, input wire b_last,
    output wire [C*E-1:0] p_data, output wire p_valid, input wire p_ready
);
  generate if (P == C && LASTN == P) begin : pass
    assign p_data = b_data;
    assign p_valid = b_valid;
    assign b_ready = p_ready;
  end else begin : buffered
    localparam B = P + C - 1;
    localparam NW = $clog2(B + 1);
    reg [B*E-1:0] buffer, nxt;
    reg [NW-1:0] n;
    wire pop = p_valid && p_ready;
    wire [NW-1:0] rest = pop ? n - C : n;
    wire push = b_valid && b_ready;
    wire [NW-1:0] take = b_last ? LASTN : P;
    integer i;
    assign p_valid = (n >= C);
    assign p_data = buffer[C*E-1:0];
    assign b_ready = (rest < C);
    always @(*) begin
      nxt = pop ? (buffer >> (C*E)) : buffer;
      if (push)
        for (i = 0; i < P; i = i + 1) nxt[(rest + i)*E +: E] = b_data[i*E +: E];
    end
    always @(posedge clk) begin
      n <= rst ? {NW{1'b0}} : rest + (push ? take : {NW{1'b0}});
      buffer <= nxt;
    end
  end endgenerate
endmodule

// ---------------------------------------------------------------------------- dl_pipe
// A two-entry register slice: out_* registered, in_ready registered (breaks the ready path).
module dl_pipe #(parameter W = 1) (
    input  wire clk, input wire rst,
    input  wire [W-1:0] in_data, input wire in_valid, output wire in_ready,
    output wire [W-1:0] out_data, output wire out_valid, input wire out_ready
);
  reg [W-1:0] d0, d1;
  reg v0, v1;
  assign out_data = d0;
  assign out_valid = v0;
  assign in_ready = !v1;
  always @(posedge clk) begin
    if (rst) begin
      v0 <= 1'b0; v1 <= 1'b0;
    end else if (out_ready || !v0) begin
      if (v1) begin
        d0 <= d1; v1 <= 1'b0;
      end else begin
        d0 <= in_data; v0 <= in_valid;
      end
    end else if (in_valid && !v1) begin
      d1 <= in_data; v1 <= 1'b1;
    end
  end
endmodule

// ---------------------------------------------------------------------------- dl_scan
// The sliding window of a conv layer over its zero-padded input (HP x WP positions of CIN
// bits, raster order): one scan step per cycle; a step inside the image takes one input
// position, a padding step inserts zeros.  `chain` holds the last LEN positions (entry j = the
// position j steps back, LEN = (KH-1)*WP + KW), i.e. the line buffers and the window.  After a
// step at (r, c) with ROW_DUE[r] & COL_DUE[c], the window ending there is an output position:
// win_valid stays high until win_ready takes it, and the scan waits meanwhile.
module dl_scan #(parameter CIN = 1, parameter HP = 1, parameter WP = 1, parameter LEN = 1,
                 parameter [HP-1:0] ROW_IN = 1, parameter [HP-1:0] ROW_DUE = 1,
                 parameter [WP-1:0] COL_IN = 1, parameter [WP-1:0] COL_DUE = 1) (
    input  wire clk, input wire rst,
    input  wire [CIN-1:0] in_data, input wire in_valid, output wire in_ready,
    output reg  [LEN*CIN-1:0] chain, output wire win_valid, input wire win_ready
);
  localparam RW = (HP > 1) ? $clog2(HP) : 1;
  localparam CWD = (WP > 1) ? $clog2(WP) : 1;
  reg [RW-1:0] r;
  reg [CWD-1:0] c;
  reg due_q;
  wire interior = ROW_IN[r] & COL_IN[c];
  wire slot_free = !due_q || win_ready;
  wire advance = slot_free && (!interior || in_valid);
  wire [CIN-1:0] v = interior ? in_data : {CIN{1'b0}};
  assign in_ready = interior && slot_free;
  assign win_valid = due_q;
  always @(posedge clk) begin
    if (rst) begin
      r <= 0; c <= 0; due_q <= 1'b0;
    end else if (advance) begin
      due_q <= ROW_DUE[r] & COL_DUE[c];
      c <= (c == WP - 1) ? {CWD{1'b0}} : c + 1'b1;
      if (c == WP - 1) r <= (r == HP - 1) ? {RW{1'b0}} : r + 1'b1;
    end else if (win_ready) due_q <= 1'b0;
  end
  generate if (LEN > 1) begin : shift
    always @(posedge clk) if (advance) chain <= {chain[(LEN-1)*CIN-1:0], v};
  end else begin : single
    always @(posedge clk) if (advance) chain <= v;
  end endgenerate
endmodule

// ---------------------------------------------------------------------------- dl_orpool
// OR pooling in the stream: H x W positions of K bits in raster order -> (H/Q) x (W/Q)
// (floor: the last rows/columns that do not fill a window are taken and dropped).  A row
// accumulator ORs Q consecutive columns; a (W/Q)-entry shift register carries the ORs of the
// window's earlier rows.
module dl_orpool #(parameter K = 1, parameter H = 2, parameter W = 2, parameter Q = 2) (
    input  wire clk, input wire rst,
    input  wire [K-1:0] in_data, input wire in_valid, output wire in_ready,
    output wire [K-1:0] out_data, output wire out_valid, input wire out_ready
);
  localparam HO = H / Q, WO = W / Q;
  localparam IW = (H > 1) ? $clog2(H) : 1, JW = (W > 1) ? $clog2(W) : 1;
  localparam QW = (Q > 1) ? $clog2(Q) : 1;
  reg [IW-1:0] i;
  reg [JW-1:0] j;
  reg [QW-1:0] qi, qj;
  reg [K-1:0] hacc;
  reg [WO*K-1:0] rows;
  wire keep = (i < HO * Q) && (j < WO * Q);
  wire emit = keep && (qi == Q - 1) && (qj == Q - 1);
  wire o_ready;
  wire take = in_valid && in_ready;
  wire [K-1:0] hnew = (qj == 0) ? in_data : (hacc | in_data);
  wire [K-1:0] vnew = (qi == 0) ? hnew : (rows[WO*K-1 -: K] | hnew);
  assign in_ready = !emit || o_ready;
  always @(posedge clk) begin
    if (rst) begin
      i <= 0; j <= 0; qi <= 0; qj <= 0;
    end else if (take) begin
      qj <= (qj == Q - 1 || j == W - 1) ? {QW{1'b0}} : qj + 1'b1;
      j <= (j == W - 1) ? {JW{1'b0}} : j + 1'b1;
      if (j == W - 1) begin
        i <= (i == H - 1) ? {IW{1'b0}} : i + 1'b1;
        qi <= (qi == Q - 1 || i == H - 1) ? {QW{1'b0}} : qi + 1'b1;
      end
    end
    if (take && keep) begin
      hacc <= hnew;
      if (qj == Q - 1) rows <= (WO > 1) ? {rows[(WO-1)*K-1:0], vnew} : vnew;
    end
  end
  dl_pipe #(.W(K)) out (.clk(clk), .rst(rst), .in_data(vnew), .in_valid(take && emit),
                        .in_ready(o_ready), .out_data(out_data), .out_valid(out_valid),
                        .out_ready(out_ready));
endmodule

// ---------------------------------------------------------------------------- dl_collect
// The last stream (N positions of K bits, raster order) gathered into one register: after the
// N-th position, data holds position n at [n*K +: K] and full is high until `take`.
module dl_collect #(parameter K = 1, parameter N = 1) (
    input  wire clk, input wire rst,
    input  wire [K-1:0] in_data, input wire in_valid, output wire in_ready,
    output reg  [N*K-1:0] data, output reg full, input wire take
);
  localparam NW = (N > 1) ? $clog2(N) : 1;
  reg [NW-1:0] cnt;
  assign in_ready = !full;
  always @(posedge clk) begin
    if (rst) begin
      cnt <= 0; full <= 1'b0;
    end else if (in_valid && !full) begin
      cnt <= (cnt == N - 1) ? {NW{1'b0}} : cnt + 1'b1;
      full <= (cnt == N - 1);
    end else if (take) full <= 1'b0;
  end
  generate if (N > 1) begin : shift
    always @(posedge clk) if (in_valid && !full) data <= {in_data, data[N*K-1:K]};
  end else begin : single
    always @(posedge clk) if (in_valid && !full) data <= in_data;
  end endgenerate
endmodule

// ---------------------------------------------------------------------------- dl_count
// The GroupSum head of the streamed form, folded over F cycles: `start` launches an image
// into the dense logic, whose outputs y arrive with y_valid (the same cycle when it is
// combinational); y is ordered by chunk (chunk f at [f*NCLS*CB +: NCLS*CB], class j's CB bits
// at [j*CB +: CB] in it).  Each cycle one chunk is popcounted per class (difflogic_net_pop,
// generated beside this module) and added to the class counts; then NCLS cycles rotate the
// counts past one comparator (a strictly greater count wins: the first maximum, as
// torch.argmax); res_valid is high for one cycle with scores (class j at [j*SW +: SW]) and
// class_idx.  busy is high from start to res_valid.
module dl_count #(parameter NCLS = 2, parameter F = 1, parameter CB = 1, parameter PW = 1,
                  parameter SW = 1, parameter CW = 1) (
    input  wire clk, input wire rst,
    input  wire start, input wire [F*NCLS*CB-1:0] y, input wire y_valid,
    output wire busy, output wire res_valid,
    output wire [NCLS*SW-1:0] scores, output wire [CW-1:0] class_idx
);
  localparam IDLE = 3'd0, WAIT = 3'd1, COUNT = 3'd2, ARG = 3'd3, DONE = 3'd4;
  localparam FW = (F > 1) ? $clog2(F) : 1;
  localparam JW = $clog2(NCLS);
  reg [2:0] state;
  reg [F*NCLS*CB-1:0] sr;
  reg [NCLS*SW-1:0] acc;
  reg [FW-1:0] f;
  reg [JW-1:0] j;
  reg [SW-1:0] best;
  reg [CW-1:0] best_j;
  wire [NCLS*PW-1:0] pc;
  wire load = y_valid && (state == WAIT || (state == IDLE && start));
  genvar g;
  generate for (g = 0; g < NCLS; g = g + 1) begin : cls
    difflogic_net_pop pop (.x(sr[g*CB +: CB]), .y(pc[g*PW +: PW]));
    always @(posedge clk) begin
      if (load) acc[g*SW +: SW] <= {SW{1'b0}};
      else if (state == COUNT) acc[g*SW +: SW] <= acc[g*SW +: SW] + pc[g*PW +: PW];
      else if (state == ARG) acc[g*SW +: SW] <= acc[((g + 1) % NCLS)*SW +: SW];
    end
  end endgenerate
  assign busy = (state != IDLE);
  assign res_valid = (state == DONE);
  assign scores = acc;
  assign class_idx = best_j;
  always @(posedge clk) begin
    if (load) sr <= y;
    else if (state == COUNT) sr <= sr >> (NCLS*CB);
    if (rst) state <= IDLE;
    else case (state)
      IDLE: if (start) state <= load ? COUNT : WAIT;
      WAIT: if (load) state <= COUNT;
      COUNT: if (f == F - 1) state <= ARG;
      ARG: if (j == NCLS - 1) state <= DONE;
      default: state <= IDLE;
    endcase
    f <= (state == COUNT) ? f + 1'b1 : {FW{1'b0}};
    j <= (state == ARG) ? j + 1'b1 : {JW{1'b0}};
    if (state == ARG && (j == 0 || acc[SW-1:0] > best)) begin
      best <= acc[SW-1:0];
      best_j <= j;
    end
  end
endmodule
