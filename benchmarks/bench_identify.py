"""`identify` at registry scale: the registry index (cold build, warm load), the screen, the shortlist's full
comparison and peak RSS, for synthetic registries of 1,000 and 100,000 entries; and, at 1,000 entries, the
plain reference path (`PROVENANCE_PLAIN=1`: every file opened as before the index, and every speed-up of the
full comparison off) in the same run, with a check that both paths give the same result.

Every measurement runs in a fresh interpreter (`bench_compare.run_child`), so `ru_maxrss` is its own:

    index-cold   the index deleted, then open_index(DIR): every file read, the index written
    index-warm   open_index(DIR) again: the stats compared, the index loaded (state must be "loaded")
    identify     identify(QUERY, registry=DIR, device="cpu", hashes=False) with the index; its stages, and
                 the CPU seconds of the whole call
    plain        the same under PROVENANCE_PLAIN=1 (only for registries of at most --old-max entries)

The query is a fingerprint file (default: the shipped all-MiniLM-L6-v2), so its "fingerprinting" is loading
it; that time is reported apart and left out of the totals.

The registries are built once and cached under --workdir (default ~/.cache/provenance-bench/identify):
the 18 shipped fingerprints (fingerprints/*.fingerprint) plus synthetic entries made from them. A synthetic
model entry takes one shipped model's first 96 anchors per pairing mode; replaces a random share of them
(with probability 1/2; else keeps them all, as a fine-tune of that model would) by new tokens; blends its
anchor rows with random ones (so its screen correlation with the source is low, as between independent
models, except for the first 3 entries, which stay close to their source); keeps 64 hidden dimensions of its
profiles and anchor rows; drops sketches and the vocabulary (its tokenizer digest and a perturbed MinHash
stay). A synthetic tokenizer entry is 200-1,000 tokens of a shipped vocabulary. Every file is a valid,
checksummed fingerprint that `load` and the full comparison accept: model entries 29-72 KB, tokenizer
entries 4-14 KB (100,000 entries: 3.7 GB, built in ~7 ms each on an idle core).

    python benchmarks/bench_identify.py                        # 1,000 and 100,000 entries
    python benchmarks/bench_identify.py --sizes 1000 --repeats 3
    python benchmarks/bench_identify.py --json /tmp/identify.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_compare  # standard library only at import time
from bench_compare import tree_state
from bench_io import MIB, REPO, environment

RECIPE = 1  # bump when the synthetic entries change: cached registries are rebuilt
SHIPPED = REPO / "fingerprints"
HIDDEN = 64
RELATED = 3
DEFAULT_QUERY = SHIPPED / "all-minilm-l6-v2.fingerprint"


# --- the synthetic registry (in a child: it imports provenance) -----------------------------

class Synth:
    """Makes synthetic entry i from the shipped fingerprints, deterministically."""

    def __init__(self) -> None:
        from provenance.fingerprint import load

        shipped = [load(p) for p in sorted(SHIPPED.glob("*.fingerprint"))]
        self.models = [fp for fp in shipped if "facts" in fp.meta]
        self.vocabs = [list(fp.vocabulary.ordinary()) for fp in shipped if "facts" not in fp.meta]
        self.formats = [(fp.vocabulary.format, fp.vocabulary.model) for fp in shipped if "facts" not in fp.meta]
        self.model_parts = [self._parts(fp) for fp in self.models]

    def entry(self, i: int) -> Any:
        import numpy as np
        rng = np.random.default_rng([20261206, RECIPE, i])
        return self._tokenizer(i, rng) if i % 3 == 2 else self._model(i, rng)

    def _model(self, i: int, rng: Any) -> Any:
        import numpy as np

        from provenance.fingerprint.anchors import BY_IDS, TAG_OF, Anchors, priorities
        from provenance.fingerprint.model import Fingerprint
        from provenance.fingerprint.screen import embedding_screen

        src, meta, parts = self.model_parts[int(rng.integers(len(self.models)))]
        blend = 0.97 if i < RELATED else float(rng.uniform(0.0, 0.3))
        meta = {**meta, "source": {**meta["source"], "name": f"synthetic {i:06d} from {src.name}",
                                   "spec": f"synthetic-{i}", "file": f"synthetic-{i}"},
                "tokenizer": {"digest": f"synthetic-{i:06d}"}}  # never the query's: `same_vocabulary` shortlists
        fp = Fingerprint(meta=meta, layers=list(src.layers))
        fp.profiles = parts["profiles"] * (1 + 0.3 * rng.standard_normal(parts["profiles"].shape)).astype(np.float32)
        for mode, (keys, ids, rows, pri, scale) in parts["anchors"].items():
            keys, ids, pri = list(keys), ids.copy(), pri.copy()
            rows = blend * rows + (1 - blend) * scale * rng.standard_normal(rows.shape)
            if i >= RELATED and rng.random() < 0.5:  # another tokenizer: a share of the anchors are other tokens
                swap = np.flatnonzero(rng.random(len(keys)) < rng.uniform(0.3, 1.0))
                for j in swap:
                    new = int(rng.integers(1 << 20, 1 << 30))
                    keys[j] = b"id:%d" % new if mode == BY_IDS else b"n" + rng.bytes(6)
                    ids[j] = new if mode == BY_IDS else int(rng.integers(0, 30000))
                rows[swap] = scale * rng.standard_normal((len(swap), rows.shape[1]))
                pri[swap] = priorities([keys[j] for j in swap])
            order = np.argsort(pri, kind="stable")
            rows = rows[order]
            fp.anchors[mode] = Anchors(mode, [keys[j] for j in order], ids[order])
            fp.anchor_rows[mode] = rows[:, :HIDDEN].astype(np.float32)
            fp.screens[TAG_OF[mode]], fp.screens[TAG_OF[mode] + ".anchors"] = embedding_screen(rows, pri[order])
        if "minhash" in src.screens:
            mh = src.screens["minhash"].copy()
            swap = rng.random(len(mh)) < rng.uniform(0.6, 1.0)  # Jaccard below the 0.5 bar: no full comparison
            mh[swap] = rng.integers(0, 2**63, size=int(swap.sum()), dtype=np.uint64)
            fp.screens["minhash"] = mh
        return fp

    def _parts(self, src: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """What every entry made from `src` starts from: slim metadata, 64-wide profiles, the first anchors."""
        import numpy as np

        from provenance.fingerprint.anchors import priorities
        from provenance.fingerprint.screen import SCREEN_ANCHORS

        meta = {k: src.meta[k] for k in ("created_by", "config_facts", "notes")}
        meta["source"] = {**src.meta["source"], "sha256": {}}
        meta["facts"] = {**src.meta["facts"], "hidden": HIDDEN,
                         "role_tensors": dict(list(src.meta["facts"]["role_tensors"].items())[:8])}
        model, w = src.meta["model"], src.meta["weights"]
        meta["model"] = {k: model.get(k) for k in ("architecture", "definition", "roles_inferred", "layers",
                                                   "parameters", "dtypes", "norm")} | {"config": {}}
        meta["weights"] = {"hidden": HIDDEN, "profile_keys": w["profile_keys"], "problems": [],
                           "constant_norms": w.get("constant_norms"), "tensors_read": w.get("tensors_read")}
        anchors = {}
        for mode, a in src.anchors.items():
            rows = src.anchor_rows[mode][:SCREEN_ANCHORS].astype(np.float64)
            keys = list(a.keys[:SCREEN_ANCHORS])
            anchors[mode] = (keys, a.ids[:SCREEN_ANCHORS].copy(), rows, priorities(keys), float(rows.std()))
        return src, meta, {"profiles": src.profiles[..., :HIDDEN].astype(np.float32), "anchors": anchors}

    def _tokenizer(self, i: int, rng: Any) -> Any:
        from provenance.fingerprint.build import from_vocabulary
        from provenance.vocab.model import NORMAL, Vocabulary

        which = int(rng.integers(len(self.vocabs)))
        ordinary = self.vocabs[which]
        take = rng.choice(len(ordinary), size=int(rng.integers(200, 1000)), replace=False)
        tokens = [ordinary[j] for j in sorted(take)] + [b"synthetic-%d-%d" % (i, j) for j in range(16)]
        v = Vocabulary(f"synthetic-{i}", *self.formats[which], tokens, [NORMAL] * len(tokens))
        return from_vocabulary(v, spec=f"synthetic-{i}", hashes=False,
                               source={"name": f"synthetic tokenizer {i:06d}", "kind": "tokenizer"})


def build_registry(n: int, folder: str) -> dict[str, Any]:
    """The registry of n entries under `folder`: the shipped files, then synthetic ones (kept if complete)."""
    from provenance.fingerprint import save

    d = Path(folder)
    manifest = d / "bench-manifest.json"
    want = {"recipe": RECIPE, "entries": n}
    if manifest.is_file() and json.loads(manifest.read_text()) == want:
        return {"built": False, "files": n, "bytes": sum(p.stat().st_size for p in d.glob("*.fingerprint"))}
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    t0 = time.perf_counter()
    shipped = sorted(SHIPPED.glob("*.fingerprint"))
    for p in shipped:
        shutil.copyfile(p, d / f"shipped-{p.name}")
    synth = Synth()
    for i in range(n - len(shipped)):
        save(synth.entry(i), d / f"synthetic-{i:06d}.fingerprint")
        if i and i % 10000 == 0:
            print(f"  {i:,} of {n:,} entries, {time.perf_counter() - t0:.0f} s", flush=True)
    manifest.write_text(json.dumps(want))
    return {"built": True, "seconds": time.perf_counter() - t0, "files": n,
            "bytes": sum(p.stat().st_size for p in d.glob("*.fingerprint"))}


# --- measurements (in children) -----------------------------------------------------------

def _index(folder: str) -> dict[str, Any]:
    from provenance.fingerprint.registry import open_index
    idx = open_index(folder)
    return {"state": idx.state, "where": idx.where, "entries": len(idx), "seconds_inside": idx.seconds,
            "index_bytes": os.path.getsize(idx.where) if idx.where != "memory" else None}


def _identify(query: str, folder: str, index: bool) -> dict[str, Any]:
    """identify() with its CPU seconds, then its scan and screen once more, timed in CPU seconds too (the CPUs
    are shared)."""
    from provenance.fingerprint import load
    from provenance.fingerprint.registry import open_index, scan
    from provenance.identify import SHORTLIST, identify, shortlist_registry
    t0, cpu0 = time.perf_counter(), time.process_time()
    r = identify(query, registry=folder, device="cpu", hashes=False, top=10, index=index)
    total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    doc = r.to_dict()
    timings = doc.pop("timings")
    fp = load(query)
    c0, w0 = time.process_time(), time.perf_counter()
    idx = open_index(folder) if index else None
    entries = [] if index else scan(folder)
    c1, w1 = time.process_time(), time.perf_counter()
    shortlist_registry(fp, Path(folder), SHORTLIST, idx, entries)
    again = {"scan_wall": w1 - w0, "scan_cpu": c1 - c0, "screen_wall": time.perf_counter() - w1,
             "screen_cpu": time.process_time() - c1}
    return {"total_seconds": total, "cpu_seconds": cpu, "timings": timings, "scanned": r.scanned,
            "shortlisted": r.shortlisted, "top": [(c.name, c.label) for c in r.candidates[:3]], "again": again,
            "doc": json.loads(r.to_json()) | {"timings": None}}


def child_main(kind: str, args: list[str]) -> None:
    if kind == "registry":
        print(json.dumps(build_registry(int(args[0]), args[1])))
        return
    import numpy  # noqa: F401  (import cost is not part of the measurement)
    import scipy.optimize  # noqa: F401
    import torch  # noqa: F401

    import provenance.comparison  # noqa: F401
    import provenance.fingerprint.registry  # noqa: F401
    import provenance.identify  # noqa: F401
    runners = {"index": lambda: _index(args[0]), "identify": lambda: _identify(args[0], args[1], True),
               "plain": lambda: _identify(args[0], args[1], False)}
    bench_compare.print_measured(kind, runners[kind])


def run_child(*args: str) -> dict[str, Any]:
    return bench_compare.run_child(*args, script=__file__)


def measure(*args: str, plain: bool = False) -> dict[str, Any]:
    """One measurement in a fresh interpreter (plain: under PROVENANCE_PLAIN=1), with the load average around it."""
    load0 = os.getloadavg()[0]
    if plain:
        os.environ["PROVENANCE_PLAIN"] = "1"
    try:
        r = run_child("--measure", *args)
    finally:
        os.environ.pop("PROVENANCE_PLAIN", None)
    r["loadavg_1min"] = [load0, os.getloadavg()[0]]
    return r


# --- the driver ---------------------------------------------------------------------------

def bench_size(n: int, folder: Path, query: Path, repeats: int, old_max: int) -> dict[str, Any]:
    """Cold build, warm loads, identify with the index (and on the plain path, when n <= old_max) for one registry."""
    from_index = folder / ".provenance-index"
    from_index.unlink(missing_ok=True)
    cold = measure("index", str(folder))
    assert cold["result"]["state"] == "built", cold["result"]
    print(f"  {n:>7,} entries  index cold build {cold['seconds']:7.2f} s (CPU {cold['cpu_seconds']:.1f} s)  "
          f"peak RSS {cold['peak_rss_mib']:6.0f} MiB  "
          f"index {cold['result']['index_bytes'] / MIB:7.1f} MiB  load {cold['loadavg_1min'][0]:.1f}", flush=True)
    row: dict[str, Any] = {"entries": n, "cold": cold, "warm": [], "identify": [], "plain": []}
    for _ in range(repeats):
        warm = measure("index", str(folder))
        assert warm["result"]["state"] == "loaded", warm["result"]
        row["warm"].append(warm)
        new = measure("identify", str(query), str(folder))
        row["identify"].append(new)
        t = new["result"]["timings"]
        again = new["result"]["again"]
        print(f"  {n:>7,} entries  index warm load {warm['seconds']:6.3f} s   identify: scan {t['scan']:.3f} s (index "
              f"{t['index']:.3f}) screen {t['screen']:.3f} s compare {t['compare']:.2f} s query {t['query']:.3f} s  "
              f"shortlisted {new['result']['shortlisted']}  identify CPU {new['result']['cpu_seconds']:.2f} s  "
              f"peak RSS {new['peak_rss_mib']:.0f} MiB  "
              f"load {new['loadavg_1min'][0]:.1f}; again: scan CPU {again['scan_cpu']:.3f} s, screen CPU "
              f"{again['screen_cpu']:.3f} s", flush=True)
        if n <= old_max:
            old = measure("plain", str(query), str(folder), plain=True)
            row["plain"].append(old)
            same = old["result"]["doc"] == new["result"]["doc"]
            t = old["result"]["timings"]
            again = old["result"]["again"]
            print(f"  {n:>7,} entries  plain path: scan {t['scan']:.3f} s screen {t['screen']:.3f} s compare "
                  f"{t['compare']:.2f} s  identify CPU {old['result']['cpu_seconds']:.2f} s  peak RSS "
                  f"{old['peak_rss_mib']:.0f} MiB  load {old['loadavg_1min'][0]:.1f}  same result: {same}; again: scan "
                  f"CPU {again['scan_cpu']:.3f} s, screen CPU {again['screen_cpu']:.3f} s", flush=True)
            if not same:
                raise SystemExit("the fast path and the plain path disagree")
    return row


def _best(runs: list[dict[str, Any]], key: Any) -> float:
    return min(key(r) for r in runs)


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per registry size and path, best of the repeats (seconds; scan + screen CPU: the two run again;
    identify CPU: the whole call, query included)."""
    head = ("| entries | path | index build cold s | index load warm s | scan s | screen s | scan + screen s "
            "| scan + screen CPU s | shortlisted | compare s | total excl. query s | identify CPU s | query s "
            "| peak RSS MiB | load |")
    lines = [head, "| ---: | --- |" + " ---: |" * 13]
    for r in rows:
        for path, runs in (("index", r["identify"]), ("plain (per file)", r["plain"])):
            if not runs:
                continue
            t = [x["result"]["timings"] for x in runs]
            cpu = min(x["result"]["again"]["scan_cpu"] + x["result"]["again"]["screen_cpu"] for x in runs)
            cold = f"{r['cold']['seconds']:.2f} (CPU {r['cold']['cpu_seconds']:.1f})" if path == "index" else "-"
            warm = f"{_best(r['warm'], lambda x: x['seconds']):.3f}" if path == "index" else "-"
            lines.append(
                f"| {r['entries']:,} | {path} | {cold} | {warm} | {min(x['scan'] for x in t):.3f} | "
                f"{min(x['screen'] for x in t):.3f} | {min(x['scan'] + x['screen'] for x in t):.3f} | {cpu:.3f} | "
                f"{runs[0]['result']['shortlisted']} | {min(x['compare'] for x in t):.2f} | "
                f"{min(x['scan'] + x['screen'] + x['compare'] for x in t):.2f} | "
                f"{min(x['result']['cpu_seconds'] for x in runs):.2f} | {min(x['query'] for x in t):.3f} | "
                f"{min(x['peak_rss_mib'] for x in runs):.0f} | "
                f"{min(x['loadavg_1min'][0] for x in runs):.1f}-{max(x['loadavg_1min'][1] for x in runs):.1f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "provenance-bench" / "identify",
                   help="where the synthetic registries are built and cached (default: %(default)s)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000], help="registry sizes (default: %(default)s)")
    p.add_argument("--query", type=Path, default=DEFAULT_QUERY, help="fingerprint to identify (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2,
                   help="warm loads and identify runs per size (default: %(default)s)")
    p.add_argument("--old-max", type=int, default=1000,
                   help="largest registry also run on the plain path (PROVENANCE_PLAIN=1) (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    p.add_argument("--measure", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.measure:
        child_main(args.measure[0], args.measure[1:])
        return
    if min(args.sizes) <= len(list(SHIPPED.glob("*.fingerprint"))) or args.repeats < 1:
        raise SystemExit(f"The 'sizes' must exceed the {len(list(SHIPPED.glob('*.fingerprint')))} shipped entries "
                         f"and 'repeats' be >= 1. Got {args.sizes} and {args.repeats} instead.")
    state = tree_state()
    print(f"library: {state['git'][:12]}" + (f" plus uncommitted changes {state['changes_sha256']}"
                                            if state["changed"] else ""), flush=True)
    rows = []
    for n in args.sizes:
        folder = args.workdir / f"registry-{n}"
        os.environ["OPENBLAS_NUM_THREADS"] = "1"  # the build's small matrix products: threads only contend
        try:
            made = run_child("--measure", "registry", str(n), str(folder))
        finally:
            os.environ.pop("OPENBLAS_NUM_THREADS")
        print(f"registry of {n:,} entries: {folder} ({made['bytes'] / MIB:,.0f} MiB"
              + (f", built in {made['seconds']:.0f} s)" if made["built"] else ", cached)"), flush=True)
        rows.append(bench_size(n, folder, args.query, args.repeats, args.old_max) | {"registry": made})
    if tree_state() != state:
        print("WARNING: the library source under provenance/ changed during the run; rows may mix versions")
    print("\n" + table(rows))
    if args.json:
        out = {"rows": rows, "environment": environment(), "library_state": {"start": state, "end": tree_state()},
               "args": {k: str(v) for k, v in vars(args).items()}}
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
