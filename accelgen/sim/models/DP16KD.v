// Simulation model of the ECP5 DP16KD subset that accelgen instantiates
// (accelgen/hdl/common/bram.py), written from Lattice FPGA-TN-02204 "ECP5 and ECP5-5G Memory
// Usage Guide": the 16 Kbit (18 Kbit with the ninth bits) embedded block RAM, used as a simple
// dual-port RAM: port A writes, port B reads, both DATA_WIDTH bits wide; at 36 bits that is the
// pseudo dual-port mode (both ports' data pins carry one 36-bit word). Ports and parameters are
// named as in yosys's share/lattice/cells_sim_ecp5.v; the address, data and byte enable pins per
// width are those of yosys's share/lattice/brams_map_16kd.v ($__DP16KD_ up to 18 bits,
// $__PDPW16KD_ at 36).
//
// Aspect and address pins per DATA_WIDTH (both ports alike): 16384x1 on ADx13..ADx0, 8192x2 on
// ADx13..ADx1, 4096x4 on ADx13..ADx2, 2048x9 on ADx13..ADx3, 1024x18 on ADx13..ADx4, 512x36 on
// ADx13..ADx5 (the lowest pin named the least significant address bit). The pins below it are
// not part of the address, except for port A's byte enables, one per 9 bits of the word: at 18
// bits ADA0 (DIA8..DIA0) and ADA1 (DIA17..DIA9), at 36 bits ADA0..ADA3 (word bits 8..0, 17..9,
// 26..18, 35..27). Data on DIA/DOB from bit 0 up (DIx0 .. DIx<width-1>) up to 18 bits.
//
// 36 bits, the pin convention of yosys's brams_map_16kd.v ($__PDPW16KD_): word bits 17..0 are
// written on DIA17..DIA0 and read on DOA17..DOA0, bits 35..18 written on DIB17..DIB0 and read on
// DOB17..DOB0. Lattice's PDPW16KD primitive names the word DI35..DI0 / DO35..DO0 and
// nextpnr-ecp5 (ecp5/pack.cc) converts it to a DP16KD with DI17..DI0 on DIA but DO17..DO0 on
// DOB: the two disagree on which side a read half leaves by. yosys's is the one every yosys +
// nextpnr ECP5 design with an inferred 32- or 36-bit-wide memory relies on, the field-proven
// one, and the one bram.py uses (tests/test_bram.py compares its pins with synth_ecp5's). No
// simulation against this model can tell which convention the silicon has: the model states
// yosys's, and a design that follows another one fails against it.
//
// Port A (clock CLKA): on a rising edge where CEA and WEA are high, the word on the data pins
// is written at its word address, at 18 and 36 bits only its bytes whose enable is high. Port B
// (clock CLKB): on a rising edge where CEB is high, the word at its address is read into the
// read latch; with REGMODE_B "OUTREG" the output register loads the latch on the next rising
// edge where OCEB is high and drives DOB (at 36 bits also DOA, through port A's side:
// REGMODE_A "OUTREG", OCEA): a word is on DOB two CLKB edges after its address was on ADB. A
// read at an edge where port A writes the same word (CLKA high, a write, the same address)
// returns an undefined word (x here). Up to 18 bits, DOB above the width and all of DOA (port
// A's reads) are not modelled: x. The contents start at zero (INITVAL_00..3F, all zero: the
// RAM's initial contents).
//
// The subset: DATA_WIDTH_A = DATA_WIDTH_B, one of 1, 2, 4, 9, 18, 36 (mixed widths, whose bit
// layout between the aspects is not modelled, are outside it); REGMODE_B "OUTREG", REGMODE_A
// "NOREG" up to 18 bits and "OUTREG" at 36; WRITEMODE_A and WRITEMODE_B "NORMAL"; RESETMODE and
// ASYNC_RESET_RELEASE "SYNC"; GSR "DISABLED"; CSDECODE_A = CSDECODE_B = "0b000"; every *MUX
// parameter at its default (no inversions: CLKAMUX "CLKA", ...); INIT_DATA "STATIC" and no
// initial contents. At every clock edge: WEB low (port B never writes), CEA, CEB, OCEA, OCEB
// high, RSTA and RSTB low (the output resets not used), CSA/CSB 0; the pins below the word
// address that are not byte enables low (ADA4 and ADB4..ADB0 at 36 bits, ADA3/ADA2 and
// ADB3..ADB0 at 18, ADx<low-1>..ADx0 narrower); at 36 bits WEA high (the byte enables are the
// write enable, as in yosys's mapping) and CLKA the same clock as CLKB (which clock runs port
// A's output register in the 36-bit mode is not modelled).
// A design outside it stops the simulation: its parameters at time zero, its pins at the first
// clock edge that sees them. Simulation only: synthesis uses the vendor primitive.
module DP16KD (
    DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4,
    DIA3, DIA2, DIA1, DIA0, ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4,
    ADA3, ADA2, ADA1, ADA0, CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0, DOA17, DOA16, DOA15,
    DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1,
    DOA0, DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
    DIB4, DIB3, DIB2, DIB1, DIB0, ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5,
    ADB4, ADB3, ADB2, ADB1, ADB0, CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0, DOB17, DOB16,
    DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2,
    DOB1, DOB0
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter DIA17MUX = "DIA17";
    parameter DIA16MUX = "DIA16";
    parameter DIA15MUX = "DIA15";
    parameter DIA14MUX = "DIA14";
    parameter DIA13MUX = "DIA13";
    parameter DIA12MUX = "DIA12";
    parameter DIA11MUX = "DIA11";
    parameter DIA10MUX = "DIA10";
    parameter DIA9MUX = "DIA9";
    parameter DIA8MUX = "DIA8";
    parameter DIA7MUX = "DIA7";
    parameter DIA6MUX = "DIA6";
    parameter DIA5MUX = "DIA5";
    parameter DIA4MUX = "DIA4";
    parameter DIA3MUX = "DIA3";
    parameter DIA2MUX = "DIA2";
    parameter DIA1MUX = "DIA1";
    parameter DIA0MUX = "DIA0";
    parameter ADA13MUX = "ADA13";
    parameter ADA12MUX = "ADA12";
    parameter ADA11MUX = "ADA11";
    parameter ADA10MUX = "ADA10";
    parameter ADA9MUX = "ADA9";
    parameter ADA8MUX = "ADA8";
    parameter ADA7MUX = "ADA7";
    parameter ADA6MUX = "ADA6";
    parameter ADA5MUX = "ADA5";
    parameter ADA4MUX = "ADA4";
    parameter ADA3MUX = "ADA3";
    parameter ADA2MUX = "ADA2";
    parameter ADA1MUX = "ADA1";
    parameter ADA0MUX = "ADA0";
    parameter CEAMUX = "CEA";
    parameter OCEAMUX = "OCEA";
    parameter CLKAMUX = "CLKA";
    parameter WEAMUX = "WEA";
    parameter RSTAMUX = "RSTA";
    parameter CSA2MUX = "CSA2";
    parameter CSA1MUX = "CSA1";
    parameter CSA0MUX = "CSA0";
    parameter DOA17MUX = "DOA17";
    parameter DOA16MUX = "DOA16";
    parameter DOA15MUX = "DOA15";
    parameter DOA14MUX = "DOA14";
    parameter DOA13MUX = "DOA13";
    parameter DOA12MUX = "DOA12";
    parameter DOA11MUX = "DOA11";
    parameter DOA10MUX = "DOA10";
    parameter DOA9MUX = "DOA9";
    parameter DOA8MUX = "DOA8";
    parameter DOA7MUX = "DOA7";
    parameter DOA6MUX = "DOA6";
    parameter DOA5MUX = "DOA5";
    parameter DOA4MUX = "DOA4";
    parameter DOA3MUX = "DOA3";
    parameter DOA2MUX = "DOA2";
    parameter DOA1MUX = "DOA1";
    parameter DOA0MUX = "DOA0";
    parameter DIB17MUX = "DIB17";
    parameter DIB16MUX = "DIB16";
    parameter DIB15MUX = "DIB15";
    parameter DIB14MUX = "DIB14";
    parameter DIB13MUX = "DIB13";
    parameter DIB12MUX = "DIB12";
    parameter DIB11MUX = "DIB11";
    parameter DIB10MUX = "DIB10";
    parameter DIB9MUX = "DIB9";
    parameter DIB8MUX = "DIB8";
    parameter DIB7MUX = "DIB7";
    parameter DIB6MUX = "DIB6";
    parameter DIB5MUX = "DIB5";
    parameter DIB4MUX = "DIB4";
    parameter DIB3MUX = "DIB3";
    parameter DIB2MUX = "DIB2";
    parameter DIB1MUX = "DIB1";
    parameter DIB0MUX = "DIB0";
    parameter ADB13MUX = "ADB13";
    parameter ADB12MUX = "ADB12";
    parameter ADB11MUX = "ADB11";
    parameter ADB10MUX = "ADB10";
    parameter ADB9MUX = "ADB9";
    parameter ADB8MUX = "ADB8";
    parameter ADB7MUX = "ADB7";
    parameter ADB6MUX = "ADB6";
    parameter ADB5MUX = "ADB5";
    parameter ADB4MUX = "ADB4";
    parameter ADB3MUX = "ADB3";
    parameter ADB2MUX = "ADB2";
    parameter ADB1MUX = "ADB1";
    parameter ADB0MUX = "ADB0";
    parameter CEBMUX = "CEB";
    parameter OCEBMUX = "OCEB";
    parameter CLKBMUX = "CLKB";
    parameter WEBMUX = "WEB";
    parameter RSTBMUX = "RSTB";
    parameter CSB2MUX = "CSB2";
    parameter CSB1MUX = "CSB1";
    parameter CSB0MUX = "CSB0";
    parameter DOB17MUX = "DOB17";
    parameter DOB16MUX = "DOB16";
    parameter DOB15MUX = "DOB15";
    parameter DOB14MUX = "DOB14";
    parameter DOB13MUX = "DOB13";
    parameter DOB12MUX = "DOB12";
    parameter DOB11MUX = "DOB11";
    parameter DOB10MUX = "DOB10";
    parameter DOB9MUX = "DOB9";
    parameter DOB8MUX = "DOB8";
    parameter DOB7MUX = "DOB7";
    parameter DOB6MUX = "DOB6";
    parameter DOB5MUX = "DOB5";
    parameter DOB4MUX = "DOB4";
    parameter DOB3MUX = "DOB3";
    parameter DOB2MUX = "DOB2";
    parameter DOB1MUX = "DOB1";
    parameter DOB0MUX = "DOB0";
    parameter WID = 0;
    parameter GSR = "ENABLED";
    parameter INIT_DATA = "STATIC";
    parameter INITVAL_00 = 320'h0;
    parameter INITVAL_01 = 320'h0;
    parameter INITVAL_02 = 320'h0;
    parameter INITVAL_03 = 320'h0;
    parameter INITVAL_04 = 320'h0;
    parameter INITVAL_05 = 320'h0;
    parameter INITVAL_06 = 320'h0;
    parameter INITVAL_07 = 320'h0;
    parameter INITVAL_08 = 320'h0;
    parameter INITVAL_09 = 320'h0;
    parameter INITVAL_0A = 320'h0;
    parameter INITVAL_0B = 320'h0;
    parameter INITVAL_0C = 320'h0;
    parameter INITVAL_0D = 320'h0;
    parameter INITVAL_0E = 320'h0;
    parameter INITVAL_0F = 320'h0;
    parameter INITVAL_10 = 320'h0;
    parameter INITVAL_11 = 320'h0;
    parameter INITVAL_12 = 320'h0;
    parameter INITVAL_13 = 320'h0;
    parameter INITVAL_14 = 320'h0;
    parameter INITVAL_15 = 320'h0;
    parameter INITVAL_16 = 320'h0;
    parameter INITVAL_17 = 320'h0;
    parameter INITVAL_18 = 320'h0;
    parameter INITVAL_19 = 320'h0;
    parameter INITVAL_1A = 320'h0;
    parameter INITVAL_1B = 320'h0;
    parameter INITVAL_1C = 320'h0;
    parameter INITVAL_1D = 320'h0;
    parameter INITVAL_1E = 320'h0;
    parameter INITVAL_1F = 320'h0;
    parameter INITVAL_20 = 320'h0;
    parameter INITVAL_21 = 320'h0;
    parameter INITVAL_22 = 320'h0;
    parameter INITVAL_23 = 320'h0;
    parameter INITVAL_24 = 320'h0;
    parameter INITVAL_25 = 320'h0;
    parameter INITVAL_26 = 320'h0;
    parameter INITVAL_27 = 320'h0;
    parameter INITVAL_28 = 320'h0;
    parameter INITVAL_29 = 320'h0;
    parameter INITVAL_2A = 320'h0;
    parameter INITVAL_2B = 320'h0;
    parameter INITVAL_2C = 320'h0;
    parameter INITVAL_2D = 320'h0;
    parameter INITVAL_2E = 320'h0;
    parameter INITVAL_2F = 320'h0;
    parameter INITVAL_30 = 320'h0;
    parameter INITVAL_31 = 320'h0;
    parameter INITVAL_32 = 320'h0;
    parameter INITVAL_33 = 320'h0;
    parameter INITVAL_34 = 320'h0;
    parameter INITVAL_35 = 320'h0;
    parameter INITVAL_36 = 320'h0;
    parameter INITVAL_37 = 320'h0;
    parameter INITVAL_38 = 320'h0;
    parameter INITVAL_39 = 320'h0;
    parameter INITVAL_3A = 320'h0;
    parameter INITVAL_3B = 320'h0;
    parameter INITVAL_3C = 320'h0;
    parameter INITVAL_3D = 320'h0;
    parameter INITVAL_3E = 320'h0;
    parameter INITVAL_3F = 320'h0;

    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
        DIA4, DIA3, DIA2, DIA1, DIA0, ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5,
        ADA4, ADA3, ADA2, ADA1, ADA0, CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0, DIB17,
        DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4,
        DIB3, DIB2, DIB1, DIB0, ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4,
        ADB3, ADB2, ADB1, ADB0, CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0;
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
        DOA4, DOA3, DOA2, DOA1, DOA0, DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10,
        DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0;

    // the word width, the lowest address pin, the depth
    localparam W = DATA_WIDTH_B;
    localparam LOW = W == 36 ? 5 : W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 : W == 2 ? 1 : 0;
    localparam DEPTH = 16384 >> LOW;
    // port A's byte enables, on ADA0 up
    localparam BES = W == 36 ? 4 : W == 18 ? 2 : 0;

    initial begin
        if (DATA_WIDTH_A != DATA_WIDTH_B ||
            (W != 1 && W != 2 && W != 4 && W != 9 && W != 18 && W != 36) ||
            (W == 36 ? REGMODE_A != "OUTREG" : REGMODE_A != "NOREG") || REGMODE_B != "OUTREG" ||
            WRITEMODE_A != "NORMAL" || WRITEMODE_B != "NORMAL" ||
            RESETMODE != "SYNC" || ASYNC_RESET_RELEASE != "SYNC" || GSR != "DISABLED" ||
            CSDECODE_A != "0b000" || CSDECODE_B != "0b000" || INIT_DATA != "STATIC" ||
            DIA17MUX != "DIA17" || DIA16MUX != "DIA16" || DIA15MUX != "DIA15" ||
            DIA14MUX != "DIA14" || DIA13MUX != "DIA13" || DIA12MUX != "DIA12" ||
            DIA11MUX != "DIA11" || DIA10MUX != "DIA10" || DIA9MUX != "DIA9" ||
            DIA8MUX != "DIA8" || DIA7MUX != "DIA7" || DIA6MUX != "DIA6" ||
            DIA5MUX != "DIA5" || DIA4MUX != "DIA4" || DIA3MUX != "DIA3" ||
            DIA2MUX != "DIA2" || DIA1MUX != "DIA1" || DIA0MUX != "DIA0" ||
            ADA13MUX != "ADA13" || ADA12MUX != "ADA12" || ADA11MUX != "ADA11" ||
            ADA10MUX != "ADA10" || ADA9MUX != "ADA9" || ADA8MUX != "ADA8" ||
            ADA7MUX != "ADA7" || ADA6MUX != "ADA6" || ADA5MUX != "ADA5" ||
            ADA4MUX != "ADA4" || ADA3MUX != "ADA3" || ADA2MUX != "ADA2" ||
            ADA1MUX != "ADA1" || ADA0MUX != "ADA0" || CEAMUX != "CEA" ||
            OCEAMUX != "OCEA" || CLKAMUX != "CLKA" || WEAMUX != "WEA" ||
            RSTAMUX != "RSTA" || CSA2MUX != "CSA2" || CSA1MUX != "CSA1" ||
            CSA0MUX != "CSA0" || DOA17MUX != "DOA17" || DOA16MUX != "DOA16" ||
            DOA15MUX != "DOA15" || DOA14MUX != "DOA14" || DOA13MUX != "DOA13" ||
            DOA12MUX != "DOA12" || DOA11MUX != "DOA11" || DOA10MUX != "DOA10" ||
            DOA9MUX != "DOA9" || DOA8MUX != "DOA8" || DOA7MUX != "DOA7" ||
            DOA6MUX != "DOA6" || DOA5MUX != "DOA5" || DOA4MUX != "DOA4" ||
            DOA3MUX != "DOA3" || DOA2MUX != "DOA2" || DOA1MUX != "DOA1" ||
            DOA0MUX != "DOA0" || DIB17MUX != "DIB17" || DIB16MUX != "DIB16" ||
            DIB15MUX != "DIB15" || DIB14MUX != "DIB14" || DIB13MUX != "DIB13" ||
            DIB12MUX != "DIB12" || DIB11MUX != "DIB11" || DIB10MUX != "DIB10" ||
            DIB9MUX != "DIB9" || DIB8MUX != "DIB8" || DIB7MUX != "DIB7" ||
            DIB6MUX != "DIB6" || DIB5MUX != "DIB5" || DIB4MUX != "DIB4" ||
            DIB3MUX != "DIB3" || DIB2MUX != "DIB2" || DIB1MUX != "DIB1" ||
            DIB0MUX != "DIB0" || ADB13MUX != "ADB13" || ADB12MUX != "ADB12" ||
            ADB11MUX != "ADB11" || ADB10MUX != "ADB10" || ADB9MUX != "ADB9" ||
            ADB8MUX != "ADB8" || ADB7MUX != "ADB7" || ADB6MUX != "ADB6" ||
            ADB5MUX != "ADB5" || ADB4MUX != "ADB4" || ADB3MUX != "ADB3" ||
            ADB2MUX != "ADB2" || ADB1MUX != "ADB1" || ADB0MUX != "ADB0" ||
            CEBMUX != "CEB" || OCEBMUX != "OCEB" || CLKBMUX != "CLKB" ||
            WEBMUX != "WEB" || RSTBMUX != "RSTB" || CSB2MUX != "CSB2" ||
            CSB1MUX != "CSB1" || CSB0MUX != "CSB0" || DOB17MUX != "DOB17" ||
            DOB16MUX != "DOB16" || DOB15MUX != "DOB15" || DOB14MUX != "DOB14" ||
            DOB13MUX != "DOB13" || DOB12MUX != "DOB12" || DOB11MUX != "DOB11" ||
            DOB10MUX != "DOB10" || DOB9MUX != "DOB9" || DOB8MUX != "DOB8" ||
            DOB7MUX != "DOB7" || DOB6MUX != "DOB6" || DOB5MUX != "DOB5" ||
            DOB4MUX != "DOB4" || DOB3MUX != "DOB3" || DOB2MUX != "DOB2" ||
            DOB1MUX != "DOB1" || DOB0MUX != "DOB0" ||
            {INITVAL_00, INITVAL_01, INITVAL_02, INITVAL_03, INITVAL_04, INITVAL_05, INITVAL_06,
             INITVAL_07, INITVAL_08, INITVAL_09, INITVAL_0A, INITVAL_0B, INITVAL_0C, INITVAL_0D,
             INITVAL_0E, INITVAL_0F, INITVAL_10, INITVAL_11, INITVAL_12, INITVAL_13, INITVAL_14,
             INITVAL_15, INITVAL_16, INITVAL_17, INITVAL_18, INITVAL_19, INITVAL_1A, INITVAL_1B,
             INITVAL_1C, INITVAL_1D, INITVAL_1E, INITVAL_1F, INITVAL_20, INITVAL_21, INITVAL_22,
             INITVAL_23, INITVAL_24, INITVAL_25, INITVAL_26, INITVAL_27, INITVAL_28, INITVAL_29,
             INITVAL_2A, INITVAL_2B, INITVAL_2C, INITVAL_2D, INITVAL_2E, INITVAL_2F, INITVAL_30,
             INITVAL_31, INITVAL_32, INITVAL_33, INITVAL_34, INITVAL_35, INITVAL_36, INITVAL_37,
             INITVAL_38, INITVAL_39, INITVAL_3A, INITVAL_3B, INITVAL_3C, INITVAL_3D, INITVAL_3E,
             INITVAL_3F} != 0) begin
            $display("DP16KD model: parameters outside the modelled subset");
            $finish;
        end
    end

    // the word on the data pins: at 36 bits bits 17..0 on DIA, 35..18 on DIB (yosys's
    // convention); up to 18 bits DIA alone
    wire [35:0] di = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                      DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0, DIA17, DIA16, DIA15, DIA14,
                      DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2,
                      DIA1, DIA0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                       ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                       ADB2, ADB1, ADB0};
    wire [13:0] wa = ada >> LOW;
    wire [13:0] ra = adb >> LOW;
    // the pins below the word address, and the byte enables among them
    wire [13:0] below = (14'd1 << LOW) - 14'd1;
    wire [13:0] bytes = (14'd1 << BES) - 14'd1;
    // the bits a write stores: byte k (bits 9k..9k+8) where its enable ADAk is high
    wire [W-1:0] wmask;
    genvar g;
    generate for (g = 0; g < W; g = g + 1) begin : byte_enable
        assign wmask[g] = BES == 0 ? 1'b1 : ada[g / 9];
    end endgenerate
    // a write at this CLKA edge
    wire we = CEA && WEA && wmask != 0;

    reg [W-1:0] mem [0:DEPTH-1];
    reg [W-1:0] latch = 0, out_r = 0;
    integer i;
    initial for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;

    // pins outside the subset
    task check_pins;
        if (WEB || !CEA || !CEB || !OCEA || !OCEB || RSTA || RSTB ||
            {CSA2, CSA1, CSA0} != 3'b000 || {CSB2, CSB1, CSB0} != 3'b000 ||
            (ada & below & ~bytes) != 14'd0 || (adb & below) != 14'd0 ||
            (W == 36 && (!WEA || CLKA !== CLKB))) begin
            $display("DP16KD model: pins outside the modelled subset at time %0t", $time);
            $finish;
        end
    endtask

    always @(posedge CLKA) begin
        check_pins;
        if (we) mem[wa] <= (mem[wa] & ~wmask) | (di[W-1:0] & wmask);
    end
    always @(posedge CLKB) begin
        check_pins;
        if (CEB) latch <= (CLKA && we && wa == ra) ? {W{1'bx}} : mem[ra];
        // at 36 bits the low half passes port A's output register (OCEA): high, like OCEB
        if (OCEB) out_r <= latch;
    end
    wire [35:0] q = out_r;
    wire [17:0] doa, dob;
    generate if (W == 36) begin : pdp
        // 36 bits: bits 17..0 leave on DOA, 35..18 on DOB (yosys's convention)
        assign doa = q[17:0], dob = q[35:18];
    end else begin : tdp
        reg [17:0] b;
        always @* begin
            b = {18{1'bx}};
            b[W-1:0] = q[W-1:0];
        end
        assign doa = {18{1'bx}}, dob = b;
    end endgenerate
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
            DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
            DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
