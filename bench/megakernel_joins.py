"""What a join costs on the GPU, under the load a megakernel phase puts on HBM: the megakernel's counter join
(red.release, then ld.acquire polls), with and without a read of a peer's value after it, against a thread-block
cluster barrier (barrier.cluster, release/acquire) and a read of the peer's shared memory (DSMEM).

    python bench/megakernel_joins.py          # CUDA host with nvcc (sm_90): builds bench/megakernel_joins.cu

128 blocks of 512 threads in clusters of 8 stream 64 or 16 KB each per round (a fresh part of a 2.5 / 0.6 GB
buffer, 16-byte loads, as the megakernel's pre-wait batches) and then join; the time per round beyond the
stream-only mode is what the join adds. The peer is the megakernel's own protocol, the counter join. Writes
bench/results/megakernel_joins.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", str(HERE / "results")))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "joins"
        subprocess.run(["nvcc", "-arch=sm_90", "-std=c++17", "-O3", "-o", str(exe), str(HERE / "megakernel_joins.cu")],
                       check=True)
        measured = json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)
    device = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                            text=True).stdout.strip().splitlines()[0]
    result = {"device": device, "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "blocks": 128, "threads": 512, "cluster": 8, "unit": "us per round (median of 7 interleaved runs)",
              **measured}
    for rows in measured.values():   # what each join adds to the stream-only round (no load: the join alone)
        base = rows.get("stream_only", {}).get("us_per_round_median", 0.0)
        for r in rows.values():
            if isinstance(r, dict):
                r["join_us"] = r["us_per_round_median"] - base
    out = Path(args.out) / "megakernel_joins.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"{'load':<10} {'join':<36} {'us per round':>12} {'join us':>8}")
    for load, rows in measured.items():
        for name, r in rows.items():
            if isinstance(r, dict):
                print(f"{load:<10} {name:<36} {r['us_per_round_median']:>12.3f} {r['join_us']:>8.3f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
