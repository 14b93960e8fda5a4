"""Structure-aware mutators: safetensors-style headers (also fingerprints), JSON, YAML and CSV documents."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Sequence
from typing import Any

from fuzz.hostile import MAX_TEXT, dumps, edit, hostile, size_of
from fuzz.mutate import MAX_SIZE

_DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "U16",
           "U32", "U64", "F4", "I4", "c64", "f32", "")


def _split_header(data: bytes) -> tuple[dict, bytes] | None:
    """(header object, data section) of a safetensors-style file, or None if it does not parse."""
    if len(data) < 8:
        return None
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        return None
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, RecursionError):
        return None
    return (header, data[8 + n:]) if isinstance(header, dict) else None


def _tensor_edit(header: dict, rng: random.Random) -> None:
    """A plausible-but-wrong edit of one tensor entry: dtype, shape or offsets."""
    names = [k for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if not names:
        header[f"t{rng.randrange(9)}"] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
        return
    e = header[rng.choice(names)]
    shape, offs = e.get("shape"), e.get("data_offsets")
    op = rng.randrange(8)
    if op == 0:
        e["dtype"] = rng.choice(_DTYPES)
    elif op == 1 and isinstance(shape, list):
        e["shape"] = shape + [rng.choice((0, 1, 2, 2**31, 2**62))] if rng.random() < 0.5 else shape[:-1]
    elif op == 2 and isinstance(shape, list) and shape:
        i = rng.randrange(len(shape))
        shape[i] = rng.choice((0, 1, 2 * (shape[i] if isinstance(shape[i], int) else 1), 2**32, 2**61, 2**63,
                               -shape[i] if isinstance(shape[i], int) else -1))
    elif op == 3 and isinstance(offs, list) and len(offs) == 2:
        e["data_offsets"] = rng.choice(([offs[1], offs[0]], [offs[0] + 1, offs[1] + 1], [0, offs[1]],
                                        [offs[0], 2**64], [offs[0], offs[0]], [-4, offs[1] - offs[0] - 4]))
    elif op == 4:  # point at another tensor's bytes
        other = header[rng.choice(names)]
        e["data_offsets"] = other.get("data_offsets")
    elif op == 5:
        e[rng.choice(("dtype", "shape", "data_offsets"))] = hostile(rng)
    elif op == 6:
        e.pop(rng.choice(("dtype", "shape", "data_offsets")), None)
    else:
        e[rng.choice(("extra", "shape ", "DTYPE"))] = hostile(rng)


def _inner_json(header: dict, rng: random.Random) -> bool:
    """Edit the JSON held in a __metadata__ string (a fingerprint's metadata); False if there is none."""
    meta = header.get("__metadata__")
    if not isinstance(meta, dict):
        return False
    for key, value in meta.items():
        if isinstance(value, str) and value[:1] in "{[":
            try:
                doc = json.loads(value)
            except ValueError:
                return False
            for _ in range(rng.choice((1, 1, 2, 3))):
                doc = edit(doc, rng)
            meta[key] = dumps(doc, rng)
            return True
    return False


def safetensors_header(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Rewrite the JSON header: hostile shapes, dtypes, offsets, metadata, many or duplicate entries."""
    parsed = _split_header(data)
    if parsed is None:
        return data
    header, body = parsed
    op = rng.randrange(10)
    if op <= 2:
        _tensor_edit(header, rng)
    elif op == 3:
        header = edit(header, rng)
    elif op == 4 or (op == 5 and not _inner_json(header, rng)):
        header["__metadata__"] = rng.choice((hostile(rng), {"format": hostile(rng)}, {"k": "v" * 100}))
    elif op == 6:
        entries = [k for k in header if k != "__metadata__"]
        if entries:
            e = header[rng.choice(entries)]
            for i in range(rng.choice((2, 100, 5000))):
                header[f"copy.{i}"] = e
    text = dumps(header, rng).encode("utf-8", "surrogatepass")
    if op == 7:  # a repeated key: JSON keeps the last one
        names = [k for k in header if k != "__metadata__"]
        if names:
            name = rng.choice(names)
            text = text[:-1] + b"," + json.dumps(name).encode() + b":" + json.dumps(hostile(rng)).encode() + b"}"
    if op == 8:
        text += rng.choice((b" " * rng.choice((1, 7, 4096)), b"\x00", b"\n"))
    n = len(text)
    if op == 9:
        n = rng.choice((n - 1, n + 1, n + 8, 0, len(text) + len(body), 2**63, 2**64 - 1, 100 * 2**20 + 1))
    return n.to_bytes(8, "little") + text + body


def json_document(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Parse, edit one to three values at random paths, and re-serialise."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return data
    for _ in range(rng.choice((1, 1, 2, 3))):
        doc = edit(doc, rng)
    return dumps(doc, rng).encode("utf-8", "surrogatepass")


def yaml_document(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Parse the YAML, edit it like JSON, and write it back as YAML (block or flow) or as JSON."""
    import yaml

    try:
        doc = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # a safe loader
    except (yaml.YAMLError, ValueError, RecursionError):
        return data
    doc = _plain(doc)
    for _ in range(rng.choice((1, 1, 2))):
        doc = edit(doc, rng)
    if size_of(doc, MAX_TEXT) > MAX_TEXT:
        return data
    if rng.random() < 0.3:
        return dumps(doc, rng).encode("utf-8", "surrogatepass")
    try:
        text = yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), allow_unicode=True,
                         default_flow_style=rng.random() < 0.3)
        return text.encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, RecursionError, UnicodeEncodeError):
        return data


def _plain(doc: Any, budget: int = 50_000) -> Any:
    """YAML data as JSON-like data (keys and scalars other than str/int/float/bool/None become strings); None
    when it holds more than `budget` values once YAML aliases are expanded (an alias bomb would not fit)."""
    left = [budget]

    def copy(node: Any, depth: int) -> Any:
        left[0] -= 1
        if left[0] < 0 or depth > 200:
            raise OverflowError
        if isinstance(node, dict):
            return {str(k): copy(v, depth + 1) for k, v in node.items()}
        if isinstance(node, (list, tuple, set)):
            return [copy(v, depth + 1) for v in node]
        return node if node is None or isinstance(node, (str, int, float, bool)) else str(node)

    try:
        return copy(doc, 0)
    except (OverflowError, RecursionError):
        return None


def yaml_bomb(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Whole hostile manifests: alias bombs, deep nesting, thousands of entries, unhashable or mixed keys."""
    kind = rng.randrange(6)
    if kind == 0:
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
                  f"*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, rng.choice((4, 9)))]
        last = f"*a{len(lines) - 1}"
        field = rng.choice(("name", "spec", "role", "facts", "extra"))
        entry = {"name": "m", "spec": "s", field: last}
        body = ", ".join(f"{k}: {v}" for k, v in entry.items())
        return ("\n".join(lines) + f"\nmodels:\n  - {{{body}}}\n  - {{name: n, spec: s}}\n").encode()
    if kind == 1:
        depth = rng.choice((100, 1000, 10000, 50000))
        return ("models:\n  - {name: m, spec: " + "[" * depth + "]" * depth + "}\n").encode()
    if kind == 2:
        n = rng.choice((100, 1000, 4000))
        dup = rng.random() < 0.5
        return "".join(f"- {{name: m{0 if dup else i}, spec: s}}\n" for i in range(n)).encode()
    if kind == 3:
        return rng.choice((b"- {name: m, spec: s, 1: x, z: y}\n- {name: n, spec: s}\n",
                           b"- {name: m, spec: s, ? [a]: b}\n", b"- {name: m, spec: s, role: [base]}\n",
                           b"- !!python/object/apply:os.system [true]\n", b"- {name: m, spec: s, null: 1, 2: 3}\n",
                           b"- {name: m, spec: s, facts: !!set {a, b}}\n- {name: n, spec: s}\n",
                           b"- {name: m, spec: s, 2020-01-01: a, b: c}\n"))
    if kind == 4:
        return b"- &e {name: m, spec: s}\n- *e\n" + b"- <<: *e\n  name: x\n" * rng.choice((1, 100))
    return b"\t" * rng.choice((1, 100)) + data


def csv_document(data: bytes, rng: random.Random, others: Sequence[bytes]) -> bytes:
    """Edit parsed rows: hostile cells, many or duplicate rows and columns, odd quoting and line ends."""
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        return data
    if not rows:
        rows = [["name", "spec"]]
    op = rng.randrange(5)
    r = rng.randrange(len(rows))
    if op == 0 and rows[r]:
        rows[r][rng.randrange(len(rows[r]))] = rng.choice(("", "\x00", "\r", '"', "a\nb", "x" * 140000, "name",
                                                            "base", "candidate", "~", "~nosuchuser/x", "..", "/"))
    elif op == 1:
        rows += [list(rows[r])] * min(rng.choice((1, 100, 5000)), MAX_SIZE // (len(",".join(rows[r])) + 1))
    elif op == 2:
        columns = min(rng.choice((1, 50, 2000)), MAX_SIZE // (6 * len(rows) + 1))
        for row in rows:
            row.extend([f"c{i}" for i in range(columns)])
    elif op == 3:
        rows[r] = rows[r][:rng.randrange(len(rows[r]) + 1)]
    else:
        rows.insert(0, rng.choice((["spec", "name", "name"], ["name"], [], ["name", "spec", "role", "role"])))
    out = io.StringIO()
    writer = csv.writer(out, quoting=rng.choice((csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC)),
                        lineterminator=rng.choice(("\n", "\r\n", "\r")))
    try:
        writer.writerows(rows)
    except csv.Error:
        return data
    return out.getvalue().encode("utf-8", "surrogatepass")
