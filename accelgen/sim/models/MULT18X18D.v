// Simulation model of the ECP5 MULT18X18D subset that accelgen instantiates
// (accelgen/hdl/common/dsp.py), written from Lattice FPGA-TN-02205 "ECP5 and ECP5-5G sysDSP
// Usage Guide": P = A * B, each operand signed when its SIGNEDA/SIGNEDB is high; the input
// registers (REG_INPUTA/B_CLK = "CLK0") load A/B and SIGNEDA/SIGNEDB, the pipeline register
// (REG_PIPELINE_CLK) the product, the output register (REG_OUTPUT_CLK) P; "NONE" makes a
// stage combinational. Registers use CLK0 and reset RST0 (RESETMODE "SYNC": reset at the
// clock edge, over the enable), each with the clock enable its REG_*_CE names (CE0..CE3). Anything else (the C input, the shift
// chains SRIA/SRIB and SOURCEA/SOURCEB, other clocks, asynchronous reset) is outside the
// subset: a design using it stops the simulation at time zero. Simulation only: synthesis
// uses the vendor primitive.
module MULT18X18D (
    A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6,
    A5, A4, A3, A2, A1, A0, B17, B16, B15, B14, B13, B12,
    B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6,
    C5, C4, C3, C2, C1, C0, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2,
    CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0, SRIA17, SRIA16,
    SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7, SRIA6, SRIA5, SRIA4,
    SRIA3, SRIA2, SRIA1, SRIA0, SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10,
    SRIB9, SRIB8, SRIB7, SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0,
    P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24,
    P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12,
    P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";

    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0, B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0;
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0, SRIA17, SRIA16;
    input SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9, SRIA8, SRIA7, SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0, SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9, SRIB8, SRIB7, SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0;
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0;

    localparam IN_A = REG_INPUTA_CLK == "CLK0";
    localparam IN_B = REG_INPUTB_CLK == "CLK0";
    localparam PIPE = REG_PIPELINE_CLK == "CLK0";
    localparam OUT = REG_OUTPUT_CLK == "CLK0";

    initial begin
        if ((REG_INPUTA_CLK != "NONE" && !IN_A) || (REG_INPUTB_CLK != "NONE" && !IN_B) ||
            (REG_PIPELINE_CLK != "NONE" && !PIPE) || (REG_OUTPUT_CLK != "NONE" && !OUT) ||
            REG_INPUTC_CLK != "NONE" ||
            (IN_A && REG_INPUTA_RST != "RST0") || (IN_B && REG_INPUTB_RST != "RST0") ||
            (PIPE && REG_PIPELINE_RST != "RST0") || (OUT && REG_OUTPUT_RST != "RST0") ||
            RESETMODE != "SYNC" || MULT_BYPASS != "DISABLED" || GSR != "DISABLED") begin
            $display("MULT18X18D model: parameters outside the modelled subset");
            $finish;
        end
    end

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] a_r = 18'd0, b_r = 18'd0;
    reg sa_r = 1'b0, sb_r = 1'b0;
    reg [35:0] pipe_r = 36'd0, out_r = 36'd0;

    // the clock enable a register names: CE0 .. CE3
    function enable(input [8*3-1:0] name, input ce0, input ce1, input ce2, input ce3);
        enable = name == "CE1" ? ce1 : name == "CE2" ? ce2 : name == "CE3" ? ce3 : ce0;
    endfunction
    wire ce_a = enable(REG_INPUTA_CE, CE0, CE1, CE2, CE3);
    wire ce_b = enable(REG_INPUTB_CE, CE0, CE1, CE2, CE3);
    wire ce_pipe = enable(REG_PIPELINE_CE, CE0, CE1, CE2, CE3);
    wire ce_out = enable(REG_OUTPUT_CE, CE0, CE1, CE2, CE3);

    always @(posedge CLK0) begin
        if (RST0) begin
            a_r <= 18'd0; sa_r <= 1'b0;
        end else if (ce_a) begin
            a_r <= a; sa_r <= SIGNEDA;
        end
    end
    always @(posedge CLK0) begin
        if (RST0) begin
            b_r <= 18'd0; sb_r <= 1'b0;
        end else if (ce_b) begin
            b_r <= b; sb_r <= SIGNEDB;
        end
    end

    wire [17:0] a_q = IN_A ? a_r : a;
    wire [17:0] b_q = IN_B ? b_r : b;
    wire sa_q = IN_A ? sa_r : SIGNEDA;
    wire sb_q = IN_B ? sb_r : SIGNEDB;
    wire signed [18:0] a_x = {sa_q & a_q[17], a_q};
    wire signed [18:0] b_x = {sb_q & b_q[17], b_q};
    wire signed [37:0] product = a_x * b_x;
    wire [35:0] p_mult = product[35:0];

    always @(posedge CLK0) begin
        if (RST0) begin
            pipe_r <= 36'd0;
        end else if (ce_pipe) begin
            pipe_r <= p_mult;
        end
    end
    wire [35:0] p_pipe = PIPE ? pipe_r : p_mult;

    always @(posedge CLK0) begin
        if (RST0) begin
            out_r <= 36'd0;
        end else if (ce_out) begin
            out_r <= p_pipe;
        end
    end
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = OUT ? out_r : p_pipe;
endmodule
