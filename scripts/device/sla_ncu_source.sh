#!/usr/bin/env bash
# Per-SASS-instruction stall sampling of one SageSLA sparse-kernel launch (Nsight Compute, --page source): the
# hottest instructions and the samples summed over address ranges. RANGES="lo-hi,lo-hi" (hex SASS offsets, e.g. the
# main loop found with cuobjdump). Raw CSV in $OUT/sla_src.csv.
set -uo pipefail
source "$(dirname "$0")/env.sh"
NCU=$(ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 300 $NCU --kernel-name regex:${KERNEL:-sparse} --launch-count 1 --section WarpStateStats \
  --section SourceCounters --page source --print-source sass --csv \
  $B/turbodiff bench attention --modes sagesla --topk 0.1 --no-14b --iters 1 --warmup 0 > "$OUT/sla_src.csv" 2>&1
echo "ncu rc=$?"
python3 - "$OUT/sla_src.csv" "${RANGES:-}" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1], errors="replace")) if r]
hdr = next(i for i, r in enumerate(rows) if "Address" in r and "Source" in r)
h = rows[hdr]
print("columns:", [c for c in h][:40])
ia, isrc = h.index("Address"), h.index("Source")
col = next(c for c in h if c.startswith("Warp Stall Sampling (All"))
ic = h.index(col)
data = []
for r in rows[hdr + 1:]:
    try:
        data.append((int(r[ia], 16), r[isrc], float(r[ic].replace(",", "") or 0)))
    except (ValueError, IndexError):
        pass
tot = sum(d[2] for d in data)
print("instructions", len(data), "samples", tot)
for a, s, n in sorted(data, key=lambda d: -d[2])[:40]:
    print(f"{a:#07x} {n:8.0f} {100*n/tot:5.1f}%  {s[:90]}")
for rg in filter(None, sys.argv[2].split(",")):
    lo, hi = (int(x, 16) for x in rg.split("-"))
    n = sum(d[2] for d in data if lo <= d[0] < hi)
    print(f"range {rg}: {100*n/tot:.1f}% of samples")
PY
