#!/usr/bin/env bash
# Submits the matching array and the dependent merge job for a plan.
#   scripts/slurm/submit.sh PLAN NUM_TASKS [l2m match options...]
# Prints the two job ids. Environment: L2M (the l2m program, default `l2m`),
# SBATCH_MATCH_ARGS / SBATCH_MERGE_ARGS (extra sbatch options, e.g.
# "--gres=gpu:1 --partition=gpu"), MERGE_ARGS (e.g. --no-verify).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
plan="$(cd "${1:?usage: submit.sh PLAN NUM_TASKS [options]}" && pwd)"
tasks="${2:?usage: submit.sh PLAN NUM_TASKS [options]}"
shift 2
export L2M="${L2M:-l2m}"
# shellcheck disable=SC2086
match_job=$(sbatch --parsable --array=0-$((tasks - 1)) --chdir="$plan" \
  ${SBATCH_MATCH_ARGS:-} "$here/match_array.sbatch" "$plan" "$@")
match_job="${match_job%%;*}"
# shellcheck disable=SC2086
merge_job=$(sbatch --parsable --dependency=afterok:"$match_job" --chdir="$plan" \
  ${SBATCH_MERGE_ARGS:-} "$here/merge.sbatch" "$plan" ${MERGE_ARGS:-})
merge_job="${merge_job%%;*}"
echo "match array job $match_job ($tasks tasks), merge job $merge_job (afterok)"
