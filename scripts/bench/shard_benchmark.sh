#!/usr/bin/env bash
# Throughput and peak memory of sharded matching: exhaustive pairs of a folder
# (142 images = 10,011 pairs), one `l2m match --plan_path` worker (or
# WORKERS in parallel, each a shard), then `l2m merge`; /usr/bin/time -v gives
# peak RSS. Extra arguments go to `l2m match` (e.g. --Sift.max_num_features).
#   scripts/bench/shard_benchmark.sh IMAGES WORK [match options...]
set -euo pipefail
images="$(cd "$1" && pwd)"; work="$2"; shift 2
l2m="${L2M:-$(cd "$(dirname "$0")/../.." && pwd)/build/colmap_plugin/l2m}"
workers="${WORKERS:-1}"
rm -rf "$work"; mkdir -p "$work"
"$l2m" image_import --log_level 1 --database_path "$work/db.db" --image_path "$images" \
  --ImageReader.single_camera 0 >/dev/null
"$l2m" plan --database_path "$work/db.db" --image_path "$images" --plan_path "$work/plan" \
  --Plan.chunk_size "${CHUNK:-256}"
start=$(date +%s.%N)
for ((i = 0; i < workers; i++)); do
  /usr/bin/time -v -o "$work/time_match_$i.txt" "$l2m" match --log_level 1 \
    --plan_path "$work/plan" --shard "$i/$workers" "$@" > "$work/match_$i.log" 2>&1 &
done
wait
end=$(date +%s.%N)
pairs=$(sed -n 's/.*"num_pairs": \([0-9]*\).*/\1/p' "$work/plan/plan.json")
/usr/bin/time -v -o "$work/time_merge.txt" "$l2m" merge --log_level 1 --plan_path "$work/plan" > "$work/merge.log"
cat "$work"/match_*.log "$work/merge.log"
awk -v p="$pairs" -v s="$start" -v e="$end" 'BEGIN { printf "match: %d pairs in %.1f s = %.1f pairs/s\n", p, e - s, p / (e - s) }'
for f in "$work"/time_match_*.txt "$work/time_merge.txt"; do
  echo "$(basename "$f" .txt): wall $(awk -F': ' '/Elapsed/ {print $2}' "$f"), peak RSS $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$f") kB"
done
du -sh "$work/plan/shards" "$work/db.db" | sed 's/^/size: /'
