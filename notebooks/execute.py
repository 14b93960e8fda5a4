"""Execute the notebooks in this folder, so the committed notebooks carry their outputs.

    python notebooks/execute.py                  # run every notebook, write the outputs back in place
    python notebooks/execute.py --check          # run into memory only; exit 1 if any cell fails
    python notebooks/execute.py 02_investigate_disguised_copy.ipynb   # only the notebooks named

Each notebook runs in a fresh "python3" kernel with notebooks/ as its working directory.
Execution timings are dropped from the cell metadata, so re-running changes only what the
cells print.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent
KERNEL = "python3"
CELL_TIMEOUT_S = 600
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime")  # nbclient's and jupyterlab-execute-time's timings


def notebooks(names: list[str] | None = None) -> list[Path]:
    """The notebooks of this folder in name order, or those named (file names or paths)."""
    if not names:
        return sorted(HERE.glob("*.ipynb"))
    found = []
    for name in names:
        path = Path(name) if Path(name).is_file() else HERE / Path(name).name
        if not path.is_file():
            raise SystemExit(f"no notebook {name!r} in {HERE}; there are: "
                             + ", ".join(p.name for p in sorted(HERE.glob("*.ipynb"))))
        found.append(path)
    return found


def strip_volatile(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove what changes on every run without changing the content (execution timestamps)."""
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
    return nb


def execute(path: Path, cwd: Path = HERE) -> nbformat.NotebookNode:
    """Run every cell of `path` in a fresh kernel (working directory `cwd`); CellExecutionError on failure."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return strip_volatile(nb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook file names (default: every *.ipynb here)")
    parser.add_argument("--check", action="store_true", help="execute in memory only; write nothing")
    args = parser.parse_args(argv)
    failed = []
    for path in notebooks(args.notebooks):
        start = time.perf_counter()
        try:
            nb = execute(path)
        except CellExecutionError as exc:
            failed.append(path.name)
            print(f"FAILED {path.name} after {time.perf_counter() - start:.0f} s\n{exc}", file=sys.stderr)
            continue
        if not args.check:
            nbformat.validate(nb)
            nbformat.write(nb, path)
        print(f"ok     {path.name} ({time.perf_counter() - start:.0f} s)" + ("" if args.check else ", written"))
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
