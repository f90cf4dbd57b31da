#!/usr/bin/env python3
"""The share of embedding work an append costs, under dagrun's rules (src/ops/shard.rs,
src/ops/embed.rs `blocks`), without running a model: python3 benches/append_cost.py N SHARDS.
Needs `pip install blake3`. The integration test `appending_galaxies_recomputes_only_the_blocks_they_touch`
checks the same rules on real runs."""
import sys, blake3
N = int(sys.argv[1]); S = int(sys.argv[2]); B = 1024
add = N // 100
last = {}      # shard -> start index (within shard) of its last block
count = {}     # shard -> rows
for i in range(N + add):
    h = blake3.blake3(f"g{i}".encode()).digest()
    s = int.from_bytes(h[:8], "little") % S
    if i == N:   # snapshot before the append
        before = {k: (count.get(k, 0), last.get(k, 0)) for k in range(S)}
    c = count.get(s, 0)
    count[s] = c + 1
    if int.from_bytes(h[8:16], "little") % B == 0:
        last[s] = c + 1  # the next block starts after this row
recomputed = 0
for k in range(S):
    rows_before, last_start = before[k]
    recomputed += count.get(k, 0) - last_start if rows_before > last_start else count.get(k, 0) - rows_before
print(f"N={N} shards={S}: appended {add} rows; embedded again {recomputed} rows = {100*recomputed/(N+add):.2f}% of the work (new rows alone: {100*add/(N+add):.2f}%)")
