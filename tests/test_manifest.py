"""The manifest is the outside contract: what it says about every stream field (names, offsets,
widths, and the element layout of every array inside a field) agrees with the configs, tiles
each field, and is enough to pack and unpack payload words bit-exactly like the golden models,
using the manifest's JSON alone (plain Python ints: no accelgen pack helpers)."""

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from accelgen.generators.emit import build_manifest
from accelgen.generators.registry import REGISTRY
from accelgen import tools
from accelgen.sim import simulators

PRESETS = [(b, p) for b, spec in REGISTRY.items() for p in spec.presets]
README = Path(__file__).resolve().parent.parent / "README.md"


def manifest_of(block, preset):
    """The manifest ``accelgen emit`` writes, as a client reads it back (no Verilog)."""
    spec = REGISTRY[block]
    config = spec.presets[preset]
    component = spec.build(config)
    component._MustUse__silence = True    # only its signature is read; never elaborated
    data = build_manifest(spec, config, component, preset=preset, top=block)
    return json.loads(json.dumps(data))


# -- (a) the manifest agrees with the configs and every array tiles its field ----------------

def array_problems(record):
    """What is wrong with the ``array`` entries of one manifest field record (``[]``: none):
    each entry has as many shape, index and stride entries, positive sizes, and its elements
    lie inside the field without overlapping."""
    problems = []
    for n, entry in enumerate(record.get("array", [])):
        shape, stride, width = entry["shape"], entry["stride"], entry["width"]
        if not len(shape) == len(entry["index"]) == len(stride) or not shape:
            problems.append(f"entry {n}: shape/index/stride lengths differ")
            continue
        if width < 1 or min(shape) < 1:
            problems.append(f"entry {n}: empty elements")
            continue
        bits = set()
        for idx in itertools.product(*map(range, shape)):
            lo = sum(i * s for i, s in zip(idx, stride))
            span = set(range(lo, lo + width))
            if lo < 0 or lo + width > record["width"]:
                problems.append(f"entry {n}: element {idx} at bits {lo}..{lo + width - 1} "
                                f"leaves the {record['width']}-bit field")
            if span & bits:
                problems.append(f"entry {n}: element {idx} overlaps another")
            bits |= span
    return problems


def when_problems(manifest, stream, record):
    """``when`` of each entry names a payload field that exists (``field`` of this stream or
    ``<stream>.<field>``), its values are distinct, and ``field`` is null only for a lone
    entry."""
    entries = record.get("array", [])
    problems = []
    selectors = {json.dumps(e.get("when", {}).get("field")) for e in entries}
    if len(selectors) > 1:
        problems.append("entries are selected by different fields")
    for e in entries:
        field = e.get("when", {}).get("field")
        if field is None:
            if len(entries) > 1:
                problems.append("several entries but no selecting field")
            continue
        where, _, name = field.rpartition(".")
        names = [f["name"] for f in manifest["streams"][where or stream]["fields"]]
        if name not in names:
            problems.append(f"when.field {field!r} is no payload field")
    values = [e["when"]["equals"] for e in entries if "when" in e]
    if len(values) != len(set(values)):
        problems.append("two entries for one value")
    return problems


@pytest.mark.parametrize("block, preset", PRESETS)
def test_manifest_fields_agree_with_config_and_arrays_tile(block, preset):
    config = REGISTRY[block].presets[preset]
    manifest = manifest_of(block, preset)
    described = config.stream_fields()
    assert set(described) == set(manifest["streams"]), "every stream is described"
    for stream, fields in described.items():
        records = manifest["streams"][stream]["fields"]
        offsets = np.cumsum([0] + [f.width for f in fields])[:-1].tolist()
        assert [(r["name"], r["offset"], r["width"]) for r in records] == \
            [(f.name, o, f.width) for f, o in zip(fields, offsets)], stream
        assert sum(f.width for f in fields) == manifest["streams"][stream]["width"]
        for record, field in zip(records, fields):
            where = f"{block}/{preset} {stream}.{record['name']}"
            assert record["doc"], f"{where} has no doc"
            assert record.get("array", []) == [a.to_dict() for a in field.array], where
            assert array_problems(record) == [], where
            assert when_problems(manifest, stream, record) == [], where


def test_array_checks_can_fail():
    manifest = manifest_of("mac", "default")
    record = json.loads(json.dumps(manifest["streams"]["i"]["fields"][0]))
    assert array_problems(record) == []
    record["array"][2]["stride"][1] -= 1            # s8s4: 8-bit elements 7 bits apart
    assert any("overlaps" in p for p in array_problems(record))
    record["array"][6]["stride"][0] += 1            # s2s2 fills its lanes: the last one
    assert any("leaves" in p for p in array_problems(record))   # leaves the field
    assert when_problems(manifest, "i", record) == []
    record["array"][0]["when"]["field"] = "bogus"
    assert "when.field 'bogus' is no payload field" in when_problems(manifest, "i", record)
    record["array"][1]["when"]["equals"] = 2
    assert "two entries for one value" in when_problems(manifest, "i", record)


def test_manifest_is_deterministic():
    for block, preset in [("mac", "default"), ("systolic", "default")]:
        assert json.dumps(manifest_of(block, preset)) == json.dumps(manifest_of(block, preset))


# -- (b) an outside client: the manifest alone packs and unpacks like the golden models -------

def fields(manifest, stream):
    return {f["name"]: f for f in manifest["streams"][stream]["fields"]}


def put(word, bit, width, value):
    return word | ((int(value) & ((1 << width) - 1)) << bit)


def get(word, bit, width, signed):
    raw = (int(word) >> bit) & ((1 << width) - 1)
    return raw - (1 << width) if signed and raw >> (width - 1) else raw


def entry_for(record, selectors):
    """The ``array`` entry of ``record`` that applies, given ``{field: value}`` of the beat
    (and of the command it belongs to, as ``"cmd.mode"``)."""
    found = [e for e in record["array"]
             if "when" not in e or e["when"]["field"] is None
             or selectors[e["when"]["field"]] == e["when"]["equals"]]
    assert len(found) == 1, (record["name"], selectors)
    return found[0]


def element_range(entry):
    w = entry["width"]
    return (-(1 << (w - 1)), (1 << (w - 1)) - 1) if entry["signed"] else (0, (1 << w) - 1)


def pack_array(word, record, entry, values):
    """``word`` with the elements ``values`` (an array of ``entry["shape"]``) put in place."""
    for idx in itertools.product(*map(range, entry["shape"])):
        bit = record["offset"] + sum(i * s for i, s in zip(idx, entry["stride"]))
        word = put(word, bit, entry["width"], values[idx])
    return word


def unpack_array(word, record, entry):
    out = np.zeros(entry["shape"], np.int64)
    for idx in itertools.product(*map(range, entry["shape"])):
        bit = record["offset"] + sum(i * s for i, s in zip(idx, entry["stride"]))
        out[idx] = get(word, bit, entry["width"], entry["signed"])
    return out


def put_field(word, record, value):
    return put(word, record["offset"], record["width"], value)


def get_field(word, record):
    return get(word, record["offset"], record["width"], record["signed"])


def random_array(rng, entry):
    lo, hi = element_range(entry)
    return rng.integers(lo, hi + 1, size=entry["shape"])


#: element formats by manifest name, decoded by the reference packages (not by accelgen)
REFERENCE_DTYPES = {"e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2", "e3m2": "float6_e3m2fn",
                    "e2m3": "float6_e2m3fn", "e2m1": "float4_e2m1fn", "bf16": "bfloat16",
                    "fp16": "float16"}


def format_values(name, codes):
    """float64 values of element ``codes`` of format ``name`` (posits: universal-dtypes;
    posit(4,1) codes are the top bits of posit(8,1) codes)."""
    import ml_dtypes
    import universal_dtypes
    codes = np.asarray(codes)
    if name == "mxi8":                     # OCP MX: int8 with an implicit scale of 2**-6
        return codes.astype(np.uint8).view(np.int8) / 64.0
    if name.startswith("mx"):              # MX element types: the element's own values
        return format_values(name[2:], codes)
    if name.startswith("p"):
        dtype, shift, store = {"p4": (universal_dtypes.posit8e1, 4, np.uint8),
                               "p8": (universal_dtypes.posit8e0, 0, np.uint8),
                               "p16": (universal_dtypes.posit16e1, 0, np.uint16)}[name]
    else:
        dtype = np.dtype(getattr(ml_dtypes, REFERENCE_DTYPES[name], None)
                         or REFERENCE_DTYPES[name])
        shift, store = 0, np.uint16 if dtype.itemsize == 2 else np.uint8
    with np.errstate(invalid="ignore"):
        return (codes << shift).astype(store).view(dtype).astype(np.float64)


def random_codes(rng, entry):
    """Random codes of a float/posit array entry whose values are finite; ``(codes,
    values)``."""
    every = np.arange(1 << entry["width"])
    finite = every[np.isfinite(format_values(entry["format"], every))]
    codes = rng.choice(finite, size=entry["shape"])
    return codes, format_values(entry["format"], codes)


def client_mac(manifest, rng, beats=12):
    """Pack random beats of every mode from the manifest; returns what the golden model needs
    and the client's own packing, plus its independent expectation of the accumulators."""
    i, o = fields(manifest, "i"), fields(manifest, "o")
    codes = manifest["derived"]["mode_codes"]
    config = manifest["config"]
    lanes, slots = config["lanes"], manifest["derived"]["elements_per_lane"]
    floats = config["accumulate"] != "int"
    a = np.zeros((beats, lanes, slots), np.float64 if floats else np.int64)
    b = np.zeros_like(a)
    mode = rng.choice(sorted(codes.values()), size=beats)
    last = rng.random(beats) < 0.3
    last[-1] = True
    clear = np.concatenate([[True], last[:-1]])
    words, sums = [], []
    for t in range(beats):
        sel = {"mode": int(mode[t])}
        ea, eb = entry_for(i["a"], sel), entry_for(i["b"], sel)
        assert ea["shape"] == eb["shape"]           # element (l, k) of a meets (l, k) of b
        (ca, va), (cb, vb) = ((random_codes(rng, e) if e.get("format") else
                               (random_array(rng, e),) * 2) for e in (ea, eb))
        n = ea["shape"][1]
        a[t, :, :n], b[t, :, :n] = va, vb
        word = pack_array(pack_array(0, i["a"], ea, ca), i["b"], eb, cb)
        if "mode" in i:
            word = put_field(word, i["mode"], mode[t])
        word = put_field(put_field(word, i["clear"], clear[t]), i["last"], last[t])
        for scale in ("scale_a", "scale_b"):   # MX scales of 2**0 (E8M0 bias 127)
            if scale in i:
                word = put_field(word, i[scale], 127)
        words.append(word)
        sums.append((va * vb).sum(axis=1))             # per lane
    acc, expect = 0, []
    for t in range(beats):
        s = sums[t].sum(keepdims=True) if config["reduction"] == "together" else sums[t]
        if config["accumulate"] == "fp32":      # beat sums rounded to FP32, FP32 additions
            with np.errstate(over="ignore", invalid="ignore"):
                s = s.astype(np.float32)
                acc = s if clear[t] else (acc + s).astype(np.float32)
        else:
            acc = s if clear[t] else acc + s
        if last[t]:
            expect.append(np.float32(acc).view(np.uint32).astype(np.int64) if floats else acc)
    return {"a": a, "b": b, "mode": mode, "clear": clear, "last": last}, words, expect, o


@pytest.mark.parametrize("preset", list(REGISTRY["mac"].presets))
def test_outside_client_mac(preset):
    from accelgen.sim.golden import mac as golden
    config = REGISTRY["mac"].presets[preset]
    manifest = manifest_of("mac", preset)
    rng = np.random.default_rng(7)
    arrays, words, expect, o = client_mac(manifest, rng)
    assert words == golden.pack_inputs(config, **arrays), f"seed 7, {preset}"
    back = golden.unpack_inputs(config, words)
    assert np.array_equal(back["a"], arrays["a"]) and np.array_equal(back["b"], arrays["b"])
    if config.element_lane:    # the client's values are the golden model's too
        assert words == golden.pack_inputs(config, **back)
    out_words = golden.mac_words(config, words)
    accs = [n for n in o if n.startswith("acc")]
    got = np.array([[get_field(w, o[n]) for n in accs] for w in out_words])
    ref = golden.unpack_outputs(config, out_words)
    assert np.array_equal(got, ref["acc"])
    assert [get_field(w, o["err"]) for w in out_words] == ref["err"].astype(int).tolist()
    # small beats never overflow: the manifest's pairing gives the numpy math (float64 sums
    # are exact for formats of at most 8 bits: their products span fewer than 53 bits)
    if all(f["a"] not in ("bf16", "fp16", "p16") for f in
           manifest["derived"]["mode_formats"].values()):
        assert np.array_equal(got, np.array(expect))


def test_outside_client_mac_can_fail():
    """A planted wrong stride in the manifest makes the client's words differ."""
    from accelgen.sim.golden import mac as golden
    config = REGISTRY["mac"].presets["default"]
    manifest = manifest_of("mac", "default")
    for record in manifest["streams"]["i"]["fields"][:1]:
        for entry in record["array"]:
            entry["stride"] = entry["stride"][::-1]       # element-major instead of lane-major
    arrays, words, _, _ = client_mac(manifest, np.random.default_rng(7))
    assert words != golden.pack_inputs(config, **arrays)


def systolic_cmd_word(manifest, cmd):
    """The ``cmd`` word of ``cmd`` (a dict of field values by name), from the manifest."""
    f = fields(manifest, "cmd")
    word = 0
    for name, value in cmd.items():
        if name in f:
            word = put_field(word, f[name], value)
        else:
            assert value == 0, f"{name} has no field in this config"
    return word


def client_systolic_operands(manifest, cmd, a, b):
    """``a`` and ``b`` beats in the documented stream orders, elements per the manifest;
    padding elements (past M, K or N: ignored by the hardware) sent as 0."""
    cfg = manifest["config"]
    R, C = cfg["rows"], cfg["cols"]
    (m, k), n = a.shape, b.shape[1]
    nb, mb, kb = -(-n // C), -(-m // R), -(-k // R)
    sel = {"cmd.mode": cmd["mode"]}
    fa, fb = fields(manifest, "a")["a"], fields(manifest, "b")["b"]
    ea, eb = entry_for(fa, sel), entry_for(fb, sel)
    assert ea["shape"] == [R] and eb["shape"] == [C]
    flow = cfg["dataflows"][cmd["dataflow"]]

    def seg(values, count):
        return np.array([values[i] if i < len(values) else 0 for i in range(count)])

    a_beats = []
    for _ in range(nb):          # A once per column block
        if flow == "os":
            for row_block in range(mb):
                for kk in range(k):
                    a_beats.append(seg(a[row_block * R:row_block * R + R, kk], R))
        else:
            for k_block in range(kb):
                for mm in range(m):
                    a_beats.append(seg(a[mm, k_block * R:k_block * R + R], R))
    b_beats = [seg(b[kk, col_block * C:col_block * C + C], C)
               for col_block in range(nb) for kk in range(k)]
    return ([pack_array(0, fa, ea, v) for v in a_beats],
            [pack_array(0, fb, eb, v) for v in b_beats])


def client_systolic_rows(manifest, cmd, o_words, m, n):
    """The result matrix from ``o`` words: rows r = nb*M + m, lanes per the manifest."""
    C = manifest["config"]["cols"]
    f = fields(manifest, "o")
    entry = entry_for(f["c"], {"cmd.output": cmd["output"]})
    rows = [unpack_array(w, f["c"], entry) for w in o_words]
    lasts = [get_field(w, f["last"]) for w in o_words]
    assert lasts == [0] * (len(o_words) - 1) + [1]        # the command's final beat only
    y = np.zeros((m, -(-n // C) * C), np.int64)
    for r, row in enumerate(rows):
        col_block, mm = divmod(r, m)
        y[mm, col_block * C:col_block * C + C] = row
    assert not y[:, n:].any()                            # lanes past N are 0
    return y[:, :n]


@pytest.mark.parametrize("preset", list(REGISTRY["systolic"].presets))
def test_outside_client_systolic(preset):
    from accelgen.sim.golden import systolic as golden
    config = REGISTRY["systolic"].presets[preset]
    manifest = manifest_of("systolic", preset)
    derived = manifest["derived"]
    rng = np.random.default_rng(11)
    R, C = config.rows, config.cols
    outputs = ["raw"] + (["requant"] if config.requant else [])
    for mode, flow, output in itertools.product(derived["mode_codes"],
                                                derived["dataflow_codes"], outputs):
        m, k, n = (int(rng.integers(1, 2 * d + 2)) for d in (R, R, C))
        cmd = {"m": m, "k": k, "n": n, "accumulate": 0, "preload": 1,
               "output": derived["output_codes"][output],
               "dataflow": derived["dataflow_codes"][flow], "mode": derived["mode_codes"][mode]}
        requant = {}
        floats = "format" in entry_for(fields(manifest, "o")["c"], {"cmd.output": 0})
        if config.requant and floats:
            requant = {"scale": int(rng.integers(-8, 8)), "relu": 0}
        elif config.requant:           # sent with every command; read with output requant
            requant = {"mult": int(rng.integers(1, 1 << 12)), "shift": 12,
                       "zero_point": int(rng.integers(-20, 20)), "relu": 0,
                       "out_signed": int(rng.integers(0, 2))}
        cmd.update(requant)
        sel = {"cmd.mode": cmd["mode"]}
        ea = {**entry_for(fields(manifest, "a")["a"], sel), "shape": (m, k)}
        eb = {**entry_for(fields(manifest, "b")["b"], sel), "shape": (k, n)}
        if floats:      # the client packs codes, the golden model takes their values
            (a, va), (b, vb) = random_codes(rng, ea), random_codes(rng, eb)
            vc = (4 * rng.normal(size=(m, n))).astype(np.float32)
            c = vc.view(np.uint32).astype(np.int64)
            vc = vc.astype(np.float64)
        else:
            a, b = random_array(rng, ea), random_array(rng, eb)
            c = rng.integers(-1000, 1000, size=(m, n))
            va, vb, vc = a, b, c
        command = golden.Command(m, k, n, preload=True, output=output, dataflow=flow,
                                 mode=mode, **{key: bool(v) if key in ("relu", "out_signed")
                                               else v for key, v in requant.items()})
        where = f"seed 11, {preset}, {mode} {flow} {output} {m}x{k}x{n}"
        assert systolic_cmd_word(manifest, cmd) == golden.pack_command(config, command), where
        a_words, b_words = client_systolic_operands(manifest, cmd, a, b)
        assert a_words == golden.a_words(config, command, va), where
        assert b_words == golden.b_words(config, command, vb), where
        result = golden.Model(config).run(command, va, vb, vc)
        fc = fields(manifest, "c")["c"]
        c_words = []
        for col_block in range(-(-n // C)):
            for mm in range(m):
                lanes = np.zeros(C, np.int64)
                part = c[mm, col_block * C:col_block * C + C]
                lanes[:len(part)] = part
                c_words.append(pack_array(0, fc, entry_for(fc, {}), lanes))
        assert c_words == result.c_words, where
        y = client_systolic_rows(manifest, cmd, result.o_words, m, n)
        assert np.array_equal(y, golden.unpack_rows(config, command, result.o_words)), where
        if output == "raw" and floats:       # FP32 sums: within a few ulp of the exact sum
            got = y.astype(np.uint32).view(np.float32).astype(np.float64)
            bound = 2.0 ** -20 * (np.abs(va) @ np.abs(vb) + np.abs(vc))
            assert (np.abs(got - (va @ vb + vc)) <= bound).all(), where
        elif output == "raw":                            # small operands: no overflow
            assert np.array_equal(y, a @ b + c), where


def test_systolic_error_precedence_is_the_manifests():
    """Commands with several error conditions at once report the first in the manifest's
    ``error_precedence``; the conditions are written from the documentation."""
    from accelgen.sim.golden import systolic as golden
    for preset in ("tiny", "default"):
        config = REGISTRY["systolic"].presets[preset]
        derived = manifest_of("systolic", preset)["derived"]
        order = derived["error_precedence"]
        assert sorted(order) == sorted(int(e) for e in derived["errors"] if e != "0")
        R, C, depth, k_max = config.rows, config.cols, config.acc_depth, config.k_max
        seen = set()
        for m, k, n, output, accumulate, flow in itertools.product(
                (0, 1, depth + 1), (0, 1, R + 1, k_max + 1), (0, 1), (0, 2, 3), (False, True),
                config.dataflows):
            holds = {
                1: 0 in (m, k, n),
                4: output == 3 or (output == 1 and not config.requant),
                2: k > k_max,
                3: ((accumulate or output == 2) and -(-n // C) * m > depth)
                or (flow == "ws" and k > R and m > depth)}
            which = [e for e in order if holds[e]]
            seen |= set(itertools.combinations(which, 2))
            cmd = golden.Command(m, k, n, accumulate=accumulate, output=output, dataflow=flow)
            assert golden.error_code(config, cmd) == (which[0] if which else 0), (preset, cmd)
        assert len(seen) == 6, f"{preset}: pairs of errors covered {sorted(seen)}"


@pytest.mark.parametrize("preset", list(REGISTRY["activation"].presets))
def test_outside_client_activation(preset):
    from accelgen.sim.golden import activation as golden
    config = REGISTRY["activation"].presets[preset]
    manifest = manifest_of("activation", preset)
    i, o = fields(manifest, "i"), fields(manifest, "o")
    rng = np.random.default_rng(3)
    ex = entry_for(i["x"], {})
    x = np.stack([random_array(rng, ex) for _ in range(16)])
    last = rng.random(16) < 0.5
    words = [put_field(pack_array(0, i["x"], ex, row), i["last"], t)
             for row, t in zip(x, last)]
    assert words == golden.pack_inputs(config, x, last), preset
    assert np.array_equal(golden.unpack_inputs(config, words)["x"], x)
    out_words = golden.words(config, words)
    ey = entry_for(o["y"], {})
    y = np.stack([unpack_array(w, o["y"], ey) for w in out_words])
    ref = golden.unpack_outputs(config, out_words)
    assert np.array_equal(y, ref["y"]) and np.array_equal(y, golden.activation(config, x))
    assert [get_field(w, o["last"]) for w in out_words] == last.astype(int).tolist()


@pytest.mark.parametrize("preset", list(REGISTRY["cast"].presets))
def test_outside_client_cast(preset):
    """Finite source values packed by the manifest's array entry; the hardware's codes
    (golden words) decoded by the entry and compared with the reference packages' casts
    (float32 -> ml_dtypes, clipped first when saturating; posits: universal-dtypes)."""
    import ml_dtypes
    import universal_dtypes
    from accelgen.sim.golden import cast as golden
    config = REGISTRY["cast"].presets[preset]
    manifest = manifest_of("cast", preset)
    i, o = fields(manifest, "i"), fields(manifest, "o")
    ex, ey = entry_for(i["x"], {}), entry_for(o["y"], {})
    rng = np.random.default_rng(9)
    values = (rng.standard_normal((12, ex["shape"][0]))
              * 2.0 ** rng.integers(-20, 20, (12, ex["shape"][0]))).astype(np.float32)
    if ex["format"] == "bf16":
        values = values.astype(ml_dtypes.bfloat16).astype(np.float32)
    codes = values.view(np.uint32).astype(np.int64)
    if ex["format"] == "bf16":
        codes >>= 16
    words = [pack_array(0, i["x"], ex, row) for row in codes]
    assert words == golden.pack_inputs(config, values.astype(np.float64)), preset
    out = np.stack([unpack_array(w, o["y"], ey) for w in golden.words(config, words)])
    target = ey["format"]
    posit = {"p8": universal_dtypes.posit8e0, "p16": universal_dtypes.posit16e1}
    if target == "p4":
        return                    # no posit(4, 1) in the reference package (tests/test_cast.py)
    if target in posit:
        want = values.astype(posit[target]).view(np.uint8 if target == "p8" else np.uint16)
        assert np.array_equal(out, want.astype(np.int64)), preset
        return
    dtype = np.dtype(getattr(ml_dtypes, REFERENCE_DTYPES[target], None)
                     or REFERENCE_DTYPES[target])
    clipped = values
    if manifest["config"]["saturate"]:
        top = float(ml_dtypes.finfo(dtype).max)
        clipped = np.clip(values, -top, top)
    with np.errstate(over="ignore"):
        want = clipped.astype(dtype).astype(np.float64)
    got = format_values(target, out)
    assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want)), \
        preset


@pytest.mark.parametrize("preset", list(REGISTRY["softmax"].presets))
def test_outside_client_softmax(preset):
    from accelgen.sim.golden import softmax as golden
    config = REGISTRY["softmax"].presets[preset]
    manifest = manifest_of("softmax", preset)
    i, o = fields(manifest, "i"), fields(manifest, "o")
    rng = np.random.default_rng(5)
    n_max = manifest["config"]["n_max"]
    lengths = rng.integers(1, min(n_max, 12) + 1, size=5)
    lo, hi = element_range({"width": i["x"]["width"], "signed": i["x"]["signed"]})
    x = rng.integers(lo, hi + 1, size=(5, int(lengths.max())))
    mask = rng.random(x.shape) < 0.2 if "mask" in i else None
    words = []
    for row, n in enumerate(lengths):
        for e in range(n):
            word = put_field(put_field(0, i["x"], x[row, e]), i["last"], e == n - 1)
            if "mask" in i:
                word = put_field(word, i["mask"], mask[row, e])
            words.append(word)
    assert words == golden.pack_inputs(config, x, lengths, mask), preset
    out_words = golden.words(config, words)
    ref = golden.unpack_outputs(config, out_words)
    assert [get_field(w, o["y"]) for w in out_words] == ref["y"].tolist()
    assert [get_field(w, o["last"]) for w in out_words] == ref["last"].astype(int).tolist()
    # a row longer than n_max ends after n_max elements, its output carrying last
    long = [put_field(0, i["last"], e == n_max) for e in range(n_max + 1)]
    lasts = [get_field(w, o["last"]) for w in golden.words(config, long)]
    assert lasts == [0] * (n_max - 1) + [1, 1]


@pytest.mark.parametrize("preset", list(REGISTRY["pim"].presets))
def test_outside_client_pim(preset):
    """A client packs a small GEMV program from the manifest alone (op codes, field offsets,
    the column and bias layouts), reads y from the RD_MAC beat's bank array and checks it with
    its own numpy product; its words are the golden model's."""
    from accelgen.sim.golden import pim as golden
    config = REGISTRY["pim"].presets[preset]
    manifest = manifest_of("pim", preset)
    derived, cmd, o = manifest["derived"], fields(manifest, "cmd"), fields(manifest, "o")
    codes = derived["op_codes"]
    rng = np.random.default_rng(13)
    banks, cols = manifest["config"]["banks"], 2
    column = entry_for(cmd["data"], {"cmd.fmt": derived["format_codes"]["s8"]})
    (lanes,) = column["shape"]
    w = rng.integers(-128, 128, (banks, cols * lanes))
    x = rng.integers(-128, 128, cols * lanes)
    b = rng.integers(-(1 << (derived["bias_width"] - 2)), 1 << (derived["bias_width"] - 2),
                     banks)

    def instr(op, **values):
        word = put_field(0, cmd["op"], codes[op])
        for name, value in values.items():
            if name == "data" and isinstance(value, np.ndarray):
                word = pack_array(word, cmd["data"], column, value)
            else:
                word = put_field(word, cmd[name], value)
        return word

    words = [instr("WR_GB", col=c, data=x[c * lanes:(c + 1) * lanes]) for c in range(cols)]
    bias_mask = (1 << derived["bias_width"]) - 1       # the bias in the low bias_width bits
    words += [instr("WR_BIAS", bank=k, data=int(b[k]) & bias_mask) for k in range(banks)]
    words.append(instr("ACT_AB", row=0, buf=0))
    words += [instr("WR_SBK", bank=k, col=c, data=w[k, c * lanes:(c + 1) * lanes])
              for k in range(banks) for c in range(cols)]
    words += [instr("MAC_ABK", col=0, count=cols, gb=0, init=1), instr("RD_MAC"),
              instr("PRE_AB"), instr("EOC")]
    program = [golden.Instr(*args[:1], **args[1]) for args in (
        [("WR_GB", {"col": c, "data": golden.pack_column(config, x[c * lanes:(c + 1) * lanes])})
         for c in range(cols)]
        + [("WR_BIAS", {"bank": k, "data": int(b[k]) & ((1 << derived["bias_width"]) - 1)})
           for k in range(banks)]
        + [("ACT_AB", {})]
        + [("WR_SBK", {"bank": k, "col": c,
                       "data": golden.pack_column(config, w[k, c * lanes:(c + 1) * lanes])})
           for k in range(banks) for c in range(cols)]
        + [("MAC_ABK", {"count": cols, "init": 1}), ("RD_MAC", {}), ("PRE_AB", {}),
           ("EOC", {})])]
    assert words == golden.pack_instr(config, program), preset
    steps = golden.Model(config).words(words)
    (beat,) = [word for s in steps for word in s.o_words]
    assert get_field(beat, o["kind"]) == derived["o_kinds"]["mac"]
    y = unpack_array(beat, o["data"], entry_for(o["data"], {"kind": derived["o_kinds"]["mac"]}))
    assert np.array_equal(y, w @ x + b), preset


def test_every_block_has_an_outside_client_test():
    names = {m.group(1) for m in re.finditer(r"def test_outside_client_(\w+)\(",
                                             Path(__file__).read_text())}
    assert set(REGISTRY) <= names


# -- (c) the simulator facts are the runner's ------------------------------------------------

@pytest.mark.parametrize("block", list(REGISTRY))
def test_simulation_facts_are_the_runners(block):
    sim = manifest_of(block, "tiny")["simulation"]
    assert sim["icarus"]["iverilog_args"] == list(tools.ICARUS_ARGS)
    assert "-g2005" in sim["icarus"]["iverilog_args"]
    assert sim["verilator"]["makeflags"] == tools.VERILATOR_MAKE_OVERRIDES
    assert "CFG_CXXFLAGS_PCH_I=-include" in sim["verilator"]["makeflags"].split()
    assert sim["verilator"]["verilator_args"] == \
        simulators.build_arguments("verilator", None, block, None)[1]
    assert sim["timescale"] == "/".join(simulators.TIMESCALE)


def test_readme_documents_the_manifest():
    text = README.read_text()
    heads = re.findall(r"^## (.+)$", text, re.M)
    assert heads[heads.index("The command line") + 1] == "The manifest"
    section = text.split("## The manifest")[1].split("\n## ")[0]
    for fact in ("-g2005", "CFG_CXXFLAGS_PCH_I=-include", "error_precedence", "stride",
                 "ignored by the hardware"):
        assert fact in section, fact
    assert "send zeros" not in text.lower()
