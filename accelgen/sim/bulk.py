"""File-backed streams: the simulation top that lets a testbench run long stream programs at
the simulator's own speed.

Every simulation build wraps the emitted block in a generated module ``<top>_bench`` (see
:func:`bench_wrapper`) with the block's own ports, names and widths, plus a few ``bulk_*``
controls. While ``bulk_run`` is low, the wrapper is a wire: testbenches drive and watch the
ports cycle by cycle as before (protocol, backpressure, reset tests). While it is high, each
input stream is fed from a text file and each output stream is written to one, by Verilog in
the simulator, so no Python runs per cycle:

``bulk_<name>.in``   input words in order, each as ``ceil(width / 8)`` bytes, most
                     significant first (read with ``$fread``: no text to parse per beat);
``bulk_<name>.log``  the cycle of each input transfer, one per line (written while
                     ``bulk_log_<name>`` is high: formatting a number per beat costs time);
``bulk_<name>.out``  ``<cycle> <hex payload>`` per output transfer (written).

Cycles count rising edges from the first edge with ``bulk_run`` high (cycle 0); a transfer is
stamped with the number of the edge that completes it, like the cocotb drivers do. Gaps come
from one 32-bit xorshift generator per stream, seeded from ``bulk_seed`` and the stream's
index: a source holding a word offers it (``valid``) in a cycle with probability
``bulk_valid_<name> / 256`` and then holds it until it is taken (AXI style); a sink is ready
with probability ``bulk_ready_<name> / 256`` each cycle (256: always). ``bulk_count_<name>``
counts the transfers of each stream; ``bulk_done`` is high once every output stream has made
``bulk_expect_<name>`` transfers. Files are opened in the first cycle with ``bulk_run`` high
and closed (flushed) in the first cycle with it low again, in the simulator's working
directory.

The module uses Verilog-2005 file I/O only (``$fopen``, ``$fread``, ``$fwrite``, ``$fclose``),
so Verilator and Icarus run it alike.

**The reset is registered.** The wrapper passes ``rst`` to the block through one flip-flop, so
the block sees a reset one rising edge after the testbench drives it
(:func:`accelgen.sim.cocotb.bench.reset` holds it one edge longer and returns one edge later, so
the block's own reset cycles and what follows them are unchanged). Why: Amaranth writes each
register's reset as a multiplexer in its combinational next-state block, so with ``rst`` a
top-level input all of the block's next-state logic depends on an input, and Verilator
evaluates it again on every input change, both clock edges included; through a flip-flop it is
evaluated once per cycle (16x16 GEMM array, 256x512x512 bulk: 107k -> 171k cycles/s). The
flip-flop sits in ``<top>_bench_core``, one level down, because the simulator build makes the
top module's signals public (writable from VPI, so again treated as inputs); ``<top>_bench``
only passes the ports through.
"""

__all__ = ["bench_top", "bench_wrapper", "PROB_ONE", "input_file", "log_file", "output_file",
           "word_bytes"]

PROB_ONE = 256      #: ``bulk_valid_*``/``bulk_ready_*`` value meaning "always"


def bench_top(top):
    """Name of the simulation top that wraps module ``top``."""
    return f"{top}_bench"


def _bench_core(top):
    """Name of the module inside the simulation top that holds everything but the ports."""
    return f"{bench_top(top)}_core"


def input_file(name):
    return f"bulk_{name}.in"


def log_file(name):
    return f"bulk_{name}.log"


def output_file(name):
    return f"bulk_{name}.out"


def _vec(width):
    return f"[{width - 1}:0] " if width > 1 else ""


def _seed_constant(index):
    """A distinct odd 32-bit constant per stream (golden-ratio steps)."""
    return (0x9E3779B9 * (index + 1)) & 0xFFFFFFFF | 1


def word_bytes(width):
    """Bytes per word in a ``bulk_<name>.in`` file."""
    return (width + 7) // 8


def _idle_to_open(name, index):
    """The shared middle of a stream's process: while idle, reseed its gap generator; while
    running, step it, and in the first cycle open the stream (count from 0)."""
    return f"""      {name}_rng <= bulk_seed ^ 32'h{_seed_constant(index):08x};
    end else begin
      {name}_rng <= next_rng({name}_rng);
      if (!{name}_open) begin
        {name}_open <= 1'b1;
        {name}_count <= 0;
"""


def _source(name, s, index):
    w = s["width"]
    ready = s["ready"] or "1'b1"        # an input without ready takes every valid word
    return f"""
  // -- input stream {name}: from {input_file(name)}
  reg {_vec(w)}{name}_word;
  reg [{8 * word_bytes(w) - 1}:0] {name}_tmp;
  reg {name}_have, {name}_shown, {name}_open;
  reg [31:0] {name}_rng, {name}_count;
  integer {name}_fd, {name}_log, {name}_got;
  wire {name}_draw = {{1'b0, {name}_rng[7:0]}} < bulk_valid_{name};
  wire {name}_offer = {name}_have & ({name}_shown | {name}_draw);
  assign u_{s['valid']} = bulk_run ? {name}_offer : {s['valid']};
  assign u_{s['payload']} = bulk_run ? {name}_word : {s['payload']};
  assign bulk_count_{name} = {name}_count;
  always @(posedge clk) begin
    if (!bulk_run) begin
      if ({name}_open) begin
        $fclose({name}_fd);
        $fclose({name}_log);
      end
      {name}_open <= 1'b0;
      {name}_have <= 1'b0;
      {name}_shown <= 1'b0;
{_idle_to_open(name, index)}        {name}_fd = $fopen("{input_file(name)}", "rb");
        {name}_log = $fopen("{log_file(name)}", "w");
        {name}_got = 0;
        if ({name}_fd != 0) {name}_got = $fread({name}_tmp, {name}_fd);
        {name}_have <= ({name}_got == {word_bytes(w)});
        {name}_word <= {name}_tmp[{w - 1}:0];
      end else if ({name}_offer && {ready}) begin
        if (bulk_log_{name}) $fwrite({name}_log, "%0d\\n", bulk_cycle_r);
        {name}_count <= {name}_count + 1;
        {name}_shown <= 1'b0;
        {name}_got = $fread({name}_tmp, {name}_fd);
        {name}_have <= ({name}_got == {word_bytes(w)});
        {name}_word <= {name}_tmp[{w - 1}:0];
      end else if ({name}_offer) begin
        {name}_shown <= 1'b1;
      end
    end
  end
"""


def _sink(name, s, index):
    if s["ready"] is None:      # a monitor: every valid cycle is a transfer
        take, drive = f"{name}_open", ""
    else:
        take = f"{name}_open & ({{1'b0, {name}_rng[7:0]}} < bulk_ready_{name})"
        drive = f"  assign u_{s['ready']} = bulk_run ? {name}_take : {s['ready']};\n"
    return f"""
  // -- output stream {name}: to {output_file(name)}
  reg {name}_open;
  reg [31:0] {name}_rng, {name}_count;
  integer {name}_fd;
  wire {name}_take = bulk_run & {take};
{drive}  assign bulk_count_{name} = {name}_count;
  always @(posedge clk) begin
    if (!bulk_run) begin
      if ({name}_open) $fclose({name}_fd);
      {name}_open <= 1'b0;
{_idle_to_open(name, index)}        {name}_fd = $fopen("{output_file(name)}", "w");
      end else if ({name}_take && {s['valid']}) begin
        $fwrite({name}_fd, "%0d %h\\n", bulk_cycle_r, {s['payload']});
        {name}_count <= {name}_count + 1;
      end
    end
  end
"""


def bench_wrapper(manifest):
    """``(module name, Verilog text)`` of the simulation top for the emitted block of
    ``manifest`` (its ``top``, ``ports`` and ``streams``): the block's ports passed through,
    or, while ``bulk_run`` is high, its streams driven from and recorded to files."""
    top = manifest["top"]
    ports = manifest["ports"]
    streams = manifest["streams"]
    reset = manifest["clock"]["reset"]
    driven = {s[key] for s in streams.values() if s["dir"] == "in" for key in ("valid", "payload")}
    driven |= {s["ready"] for s in streams.values() if s["dir"] == "out" and s["ready"]}
    decls, inner, connections = [], [], []
    for p in ports:
        name, width = p["name"], p["width"]
        decls.append(f"  {'input' if p['dir'] == 'in' else 'output'} {_vec(width)}{name};")
        if name in driven:      # what the wrapper drives in bulk mode: through a mux
            inner.append(f"  wire {_vec(width)}u_{name};")
            connections.append(f"    .{name}(u_{name})")
        elif name == reset:     # through a flip-flop (see the module's notes)
            inner += [f"  reg {name}_q;", f"  always @(posedge clk) {name}_q <= {name};"]
            connections.append(f"    .{name}({name}_q)")
        else:
            connections.append(f"    .{name}({name})")
    controls = ["  input bulk_run;", "  input [31:0] bulk_seed;", "  output bulk_done;",
                "  output [31:0] bulk_cycle;"]
    bodies, done_terms = [], []
    for index, (name, s) in enumerate(sorted(streams.items())):
        controls.append(f"  output [31:0] bulk_count_{name};")
        if s["dir"] == "in":
            controls += [f"  input [8:0] bulk_valid_{name};", f"  input bulk_log_{name};"]
            bodies.append(_source(name, s, index))
        else:
            controls += [f"  input [8:0] bulk_ready_{name};",
                         f"  input [31:0] bulk_expect_{name};"]
            bodies.append(_sink(name, s, index))
            done_terms.append(f"({name}_count >= bulk_expect_{name})")
    names = [p["name"] for p in ports] + [c.split()[-1].rstrip(";") for c in controls]
    module, core = bench_top(top), _bench_core(top)
    text = [
        f"// Generated by accelgen.sim.bulk: simulation top of {top} with file-backed streams.",
        f"module {module}({', '.join(names)});",
        *decls, *controls,
        f"  {core} core (",
        ",\n".join(f"    .{name}({name})" for name in names),
        "  );",
        "endmodule",
        "",
        f"module {core}({', '.join(names)});",
        *decls, *controls, *inner,
        "  reg [31:0] bulk_cycle_r;",
        "  assign bulk_cycle = bulk_cycle_r;",
        f"  assign bulk_done = bulk_run & {' & '.join(done_terms) or '1' + chr(39) + 'b1'};",
        "  function [31:0] next_rng(input [31:0] x);",
        "    reg [31:0] y;",
        "    begin",
        "      y = x ^ (x << 13);",
        "      y = y ^ (y >> 17);",
        "      next_rng = y ^ (y << 5);",
        "    end",
        "  endfunction",
        "  always @(posedge clk)",
        "    bulk_cycle_r <= bulk_run ? bulk_cycle_r + 1 : 32'd0;",
        *bodies,
        f"  {top} dut (",
        ",\n".join(connections),
        "  );",
        "endmodule",
        "",
    ]
    return module, "\n".join(text)
