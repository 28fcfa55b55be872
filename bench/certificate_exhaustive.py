"""The float32 certificate's exhaustive walk (spaces/float32/certificate.py) on the committed C files, against
the figures of bench/ulp_exhaustive.py (a separate checker program, results in bench/results/ulp_exhaustive.json).

    python bench/certificate_exhaustive.py                 # exp exp2 log log2 sin cos, every core
    python bench/certificate_exhaustive.py --only exp log

For each function: the certificate check in exhaustive mode (all 2^32 inputs, chunks on every core, the system
libm's binary64 function as the reference), its wall time, and whether its max ULP and worst input equal the
recorded exhaustive run. A difference means one of the two checkers is wrong, or the C file changed since
ulp_exhaustive.json was written (the table says which file hash was checked). Needs only numpy and a C compiler.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
NAMES = ("exp", "exp2", "log", "log2", "sin", "cos")


def main() -> None:
    from spaces.float32.certificate import max_ulp

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=list(NAMES))
    args = ap.parse_args()
    recorded = json.loads((RESULTS / "ulp_exhaustive.json").read_text())
    rows = []
    for name in args.only:
        source = RESULTS / f"{name}.c"
        if not source.is_file():
            print(f"{name}: {source} missing, skipped")
            continue
        params = {"lang": "c", "function": name, "bound": 1.0, "mode": "exhaustive", "stride": 1, "offset": 0,
                  "hard_points": []}
        t0 = time.perf_counter()
        outcome = max_ulp(source, params)
        seconds = time.perf_counter() - t0
        peer = recorded.get(name, {}).get("ours", {})
        r = outcome.result
        row = {"function": name, "sha256": hashlib.sha256(source.read_bytes()).hexdigest(), "inputs": r["count"],
               "max_ulp": r["max_ulp"], "worst_input_bits": f"0x{r['worst_bits']:08x}", "over_1_ulp": r["over_one"],
               "not_correctly_rounded": r["over_half"], "seconds": round(seconds, 1), "cores": os.cpu_count(),
               "peer_max_ulp": peer.get("max_ulp"), "peer_worst_input_bits": peer.get("worst_input_bits"),
               "peer_not_correctly_rounded": peer.get("not_correctly_rounded")}
        row["agree"] = (row["max_ulp"] == row["peer_max_ulp"] and row["worst_input_bits"] == row["peer_worst_input_bits"]
                        and row["not_correctly_rounded"] == row["peer_not_correctly_rounded"])
        rows.append(row)
        print(f"  {name}: {seconds:.1f} s", flush=True)
    print(f"\n{'function':<8} {'inputs':>11} {'max ULP':>9} {'> 0.5 ULP':>10} {'worst':>11} {'s':>7} {'cores':>5} "
          f"{'ulp_exhaustive.json max ULP':>28} {'agree':>6}")
    for r in rows:
        peer = f"{r['peer_max_ulp']:.6f}" if r["peer_max_ulp"] is not None else "-"
        print(f"{r['function']:<8} {r['inputs']:>11} {r['max_ulp']:>9.6f} {r['not_correctly_rounded']:>10} "
              f"{r['worst_input_bits']:>11} {r['seconds']:>7} {r['cores']:>5} {peer:>28} {str(r['agree']):>6}")
    out = RESULTS / "certificate_exhaustive.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
