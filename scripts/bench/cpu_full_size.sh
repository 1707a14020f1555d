#!/usr/bin/env bash
# The full-size graph (l2m_560: 560² coarse, 864² upsampled; random weights)
# on the CPU, one pair, model only, in up to three setups, one after another:
#   baseline   system BLAS as installed, LibTorch's own CPU allocator
#   hugepages  + the huge-page CPU allocator (--cpu_huge_pages 1)
#   openblas   + the OpenMP OpenBLAS (libopenblas0-openmp), loaded through
#              LD_LIBRARY_PATH for this command only. OPENBLAS_CORETYPE is
#              unset for this command only: the machine's environment pins an
#              older core type (docs/PLATFORM.md); tests and CI keep it.
# Each run is killed after LIMIT seconds (default 360). Results (JSON, logs)
# go to OUT (default ./cpu_full_size).
#   scripts/bench/cpu_full_size.sh [baseline] [hugepages] [openblas]
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bench="${L2M_BENCH:-$root/build/l2m_core/bench/l2m_bench}"
out="${OUT:-cpu_full_size}"
limit="${LIMIT:-360}"
openblas_dir=/usr/lib/x86_64-linux-gnu/openblas-openmp
setups=("$@")
[[ ${#setups[@]} -eq 0 ]] && setups=(baseline hugepages openblas)
mkdir -p "$out"
args=(--device cpu --preset l2m_560 --precision fp32 --batch 1 --repeats 1
      --warmup 0 --no_stages)

for setup in "${setups[@]}"; do
  env_cmd=(env)
  case "$setup" in
    baseline) huge=0 ;;
    hugepages) huge=1 ;;
    openblas)
      huge=1
      if [[ ! -e "$openblas_dir/libblas.so.3" ]]; then
        echo "$setup: skipped, $openblas_dir/libblas.so.3 missing" \
          "(apt-get install -y libopenblas0-openmp)"
        continue
      fi
      echo "$setup: LD_LIBRARY_PATH=$openblas_dir, OPENBLAS_CORETYPE unset" \
        "(was '${OPENBLAS_CORETYPE:-}') for this command only"
      env_cmd=(env -u OPENBLAS_CORETYPE "LD_LIBRARY_PATH=$openblas_dir")
      ;;
    *) echo "unknown setup '$setup'" >&2; exit 2 ;;
  esac
  echo "$setup: $(date -u +%H:%M:%S) starting (limit ${limit}s)"
  "${env_cmd[@]}" timeout "$limit" "$bench" "${args[@]}" --cpu_huge_pages "$huge" \
    --output "$out/$setup.json" > /dev/null 2> "$out/$setup.log"
  rc=$?
  if [[ $rc -eq 124 ]]; then
    echo "$setup: killed after ${limit}s"
  elif [[ $rc -ne 0 ]]; then
    echo "$setup: failed (rc $rc), see $out/$setup.log"
  else
    grep "model batch" "$out/$setup.log"
  fi
done
