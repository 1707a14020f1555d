#!/usr/bin/env bash
# Recall of retrieval pairs against exhaustive matching: the "true covisible
# pairs" are those that exhaustive SIFT matching + COLMAP verification keeps
# (>= MIN_INLIERS inliers); recall@K = the share of them that
# `l2m pairs --retrieval K` lists.
#   scripts/bench/retrieval_recall.sh IMAGES WORK "5 10 20" [MIN_INLIERS]
# Needs the l2m program (L2M, default build/colmap_plugin/l2m), colmap, sqlite3.
set -euo pipefail
images="$(cd "$1" && pwd)"; work="$2"; ks="${3:-5 10}"; min_inliers="${4:-15}"
l2m="${L2M:-$(cd "$(dirname "$0")/../.." && pwd)/build/colmap_plugin/l2m}"
mkdir -p "$work"; db="$work/exhaustive.db"
if [[ ! -f "$work/verified.txt" ]]; then
  "$l2m" image_import --log_level 1 --database_path "$db" --image_path "$images" \
    --ImageReader.single_camera 0 >/dev/null
  "$l2m" match --log_level 1 --database_path "$db" --image_path "$images" --Matcher.type sift >/dev/null
  "$l2m" verify --log_level 1 --database_path "$db" --work_path "$work" >/dev/null
  sqlite3 "$db" "SELECT a.name, b.name FROM two_view_geometries g
      JOIN images a ON a.image_id = g.pair_id / 2147483647
      JOIN images b ON b.image_id = g.pair_id % 2147483647
      WHERE g.rows >= $min_inliers" | tr '|' ' ' |
    awk '{ if ($1 < $2) print $1, $2; else print $2, $1 }' | sort -u > "$work/verified.txt"
fi
n_images=$(sqlite3 "$db" "SELECT COUNT(*) FROM images")
n_true=$(wc -l < "$work/verified.txt")
echo "images: $n_images, exhaustive pairs: $((n_images * (n_images - 1) / 2)), covisible (verified, >= $min_inliers inliers): $n_true"
echo "| K | retrieval pairs | covisible pairs found | recall |"
echo "|---|---|---|---|"
for k in $ks; do
  "$l2m" pairs --log_level 1 --database_path "$db" --image_path "$images" --retrieval "$k" \
    --output_path "$work/retrieval_$k.txt" >/dev/null
  awk '{ if ($1 < $2) print $1, $2; else print $2, $1 }' "$work/retrieval_$k.txt" | sort -u > "$work/retrieval_$k.sorted"
  n_pairs=$(wc -l < "$work/retrieval_$k.sorted")
  found=$(comm -12 "$work/verified.txt" "$work/retrieval_$k.sorted" | wc -l)
  echo "| $k | $n_pairs | $found / $n_true | $(awk -v a="$found" -v b="$n_true" 'BEGIN { printf "%.3f", b ? a / b : 0 }') |"
done
