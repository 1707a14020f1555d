#!/usr/bin/env bash
# The main job: a folder of photos -> COLMAP sparse model + report.
#   scripts/demo.sh                      # demo scene: orbit around a lifted photo, true poses known
#   L2M_DEMO=boxes scripts/demo.sh       # the older ray-cast box scene
#   scripts/demo.sh IMAGE_DIR [WORKSPACE] [l2m reconstruct options...]
# Set-up (Debian packages + build) runs first and is a no-op when done.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${L2M_BUILD_DIR:-$root/build}"
"$root/scripts/setup.sh"
l2m="$build_dir/colmap_plugin/l2m"

image_dir="${1:-}"
workspace="${2:-}"
shift $(( $# > 2 ? 2 : $# )) || true
if [ -z "$image_dir" ]; then
  workspace="${workspace:-$root/demo_output}"
  if [ "${L2M_DEMO:-photo}" = boxes ]; then
    echo "demo: no image folder given: rendering the ray-cast box scene into $workspace/demo_scene"
    "$l2m" demo_scene --output_path "$workspace/demo_scene"
    image_dir="$workspace/demo_scene/images"
  else
    # A real photo with its real (Middlebury stereo) disparity, shipped by
    # python3-skimage (scripts/packages.txt), lifted and seen from an orbit.
    # Its calibration (f = 994.978 px at 741x500, doffs = 31.086 px; 0.96x
    # for the 640x480 crop) gives the scene its true relief.
    data=/usr/lib/python3/dist-packages/skimage/data
    echo "demo: no image folder given: rendering an orbit of views around a lifted photo ($data/motorcycle_left.png + its disparity) into $workspace/scene"
    "$l2m" synth scene --image "$data/motorcycle_left.png" --disparity "$data/motorcycle_disp.npz" \
      --Scene.disparity_offset 31.086 --Scene.focal_fraction 1.4925 --output "$workspace/scene"
    image_dir="$workspace/scene/images"
  fi
fi
if [ ! -d "$image_dir" ]; then
  echo "demo: '$image_dir' is not a folder" >&2
  exit 1
fi
workspace="${workspace:-$image_dir/../l2m_workspace}"
# The matcher is l2m with the compact model shipped in models/ (offline, CPU;
# L2M_MATCHER=sift for the classical one). The demo orbit is an ordered
# sequence, so each view is matched with its 4 successors.
gt_args=()
pair_args=()
if [ -f "$image_dir/../ground_truth/images.txt" ]; then
  gt_args=(--gt_model_path "$image_dir/../ground_truth" --ImageReader.single_camera 1)
  pair_args=(--Pairs.mode sequential --Pairs.overlap 4)
fi
"$l2m" reconstruct --image_path "$image_dir" --workspace_path "$workspace" --matcher "${L2M_MATCHER:-l2m}" "${gt_args[@]}" "${pair_args[@]}" "$@"
echo "demo: sparse model in $workspace/sparse, report in $workspace/report.md"
