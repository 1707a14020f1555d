#include "synth/synth_command.h"

#include "colmap_plugin/option_manager.h"
#include "l2m_core/util/file.h"
#include "l2m_core/util/progress.h"
#include "l2m_core/util/string.h"
#include "synth/npy.h"
#include "synth/synth_scene.h"
#include "synth/synth_views.h"

#include <Eigen/LU>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <iostream>
#include <malloc.h>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace l2m {
namespace {

// How the input depth is read and where surfaces break: what every lifting
// command takes (`synth scene` sets size and focal itself).
void AddLiftingInputOptions(OptionManager* m,
                            LiftingOptions* o,
                            std::string* kind) {
  m->Add("Lifting.alpha_scale",
         &o->alpha_scale,
         "Discontinuity test: exp(-s |Sobel|).");
  m->Add("Lifting.alpha_threshold",
         &o->alpha_threshold,
         "Discontinuity test: a vertex is kept iff exp(-s |Sobel|) > this.");
  m->Add("Lifting.input_kind", kind, "disparity (larger = nearer) or depth.");
  m->Add(
      "Lifting.invalid_value",
      &o->invalid_value,
      "Raw value meaning unknown (e.g. 0 for Middlebury/Redwood); < 0: none.");
  m->Add("Lifting.input_scale", &o->input_scale, "Scale of integer inputs.");
}

void AddLiftingOptions(OptionManager* m, LiftingOptions* o, std::string* kind) {
  m->Add(
      "Lifting.size", &o->size, "Square crop size (short side resized to it).");
  m->Add("Lifting.min_focal_fraction",
         &o->min_focal_fraction,
         "Focal >= this * width.");
  m->Add("Lifting.max_focal_fraction",
         &o->max_focal_fraction,
         "Focal < this * width.");
  m->Add("Lifting.disparity_offset",
         &o->disparity_offset,
         "Added to the min-max normalised disparity (depth = 1/disparity).");
  AddLiftingInputOptions(m, o, kind);
}

// --Lifting.input_kind (parsed as text) into the options.
void ApplyInputKind(const std::string& kind, LiftingOptions* o) {
  if (kind == "depth") {
    o->input_kind = DepthInputKind::kDepth;
  } else if (kind != "disparity") {
    throw std::invalid_argument(
        "--Lifting.input_kind is disparity or depth, not '" + kind + "'");
  }
}

void AddInpaintOptions(OptionManager* m, NovelViewOptions* o) {
  m->AddBool(
      "Views.inpaint", &o->inpaint, "Fill disocclusion holes (OpenCV Telea).");
  m->Add("Views.inpaint_radius", &o->inpaint_radius, "Inpainting radius (px).");
  m->Add("Views.inpaint_scale",
         &o->inpaint_scale,
         "Inpaint at 1/scale resolution (2: ~10x faster, blurrier fill).");
}

void AddPoseOptions(OptionManager* m, PoseRangeOptions* o) {
  m->Add("Pose.max_tx", &o->max_tx, "|tx| in [max/2, max]; < 0 disables.");
  m->Add("Pose.max_ty", &o->max_ty, "|ty| in [max/2, max]; < 0 disables.");
  m->Add("Pose.max_tz", &o->max_tz, "|tz| in [max/2, max]; < 0 disables.");
  m->Add("Pose.max_rx_deg",
         &o->max_rx_deg,
         "Axis-angle x in [max/2, max] degrees.");
  m->Add("Pose.max_ry_deg",
         &o->max_ry_deg,
         "Axis-angle y in [max/2, max] degrees.");
  m->Add("Pose.max_rz_deg",
         &o->max_rz_deg,
         "Axis-angle z in [max/2, max] degrees.");
}

void AddRelightOptions(OptionManager* m, RelightOptions* o) {
  m->Add("Relight.min_lights", &o->min_lights, "Fewest point lights.");
  m->Add("Relight.max_lights", &o->max_lights, "Most point lights.");
  m->Add("Relight.min_energy", &o->min_energy, "Light energy (W) lower bound.");
  m->Add("Relight.max_energy", &o->max_energy, "Light energy (W) upper bound.");
  m->Add("Relight.min_ambient", &o->min_ambient, "Ambient factor lower bound.");
  m->Add("Relight.max_ambient", &o->max_ambient, "Ambient factor upper bound.");
  m->Add("Relight.exposure", &o->exposure, "Watts -> albedo factor.");
  m->Add("Relight.specular", &o->specular, "Blinn-Phong strength (0 = off).");
  m->Add("Relight.shininess", &o->shininess, "Blinn-Phong exponent.");
  m->AddBool(
      "Relight.shadows", &o->shadows, "Cast shadows (light-space depth maps).");
  m->Add(
      "Relight.shadow_map_size", &o->shadow_map_size, "Shadow map resolution.");
  m->Add("Relight.shadow_bias", &o->shadow_bias, "Relative shadow depth bias.");
  m->Add("Relight.normal_smoothing",
         &o->normal_smoothing,
         "Gaussian sigma on disparity before normals.");
}

void AddSkyOptions(OptionManager* m, SkyOptions* o) {
  m->Add("Sky.max_gradient", &o->max_gradient, "Max smoothed gradient of sky.");
  m->Add(
      "Sky.min_area_fraction", &o->min_area_fraction, "Min sky region area.");
  m->Add("Sky.min_top_contact",
         &o->min_top_contact,
         "Min fraction of the top row a sky region touches.");
  m->Add("Sky.max_far_disparity",
         &o->max_far_disparity,
         "With depth: sky has normalised disparity <= this.");
}

int RunViews(int argc, char** argv) {
  std::string images, disparity, output, input_kind = "disparity";
  int num_threads = 0, seed = 0;
  ViewsOptions options;
  OptionManager m(
      "synth views",
      "Stage 2.1: novel views of single photos lifted with their disparity "
      "(or a procedural depth), with exact dense GT.");
  m.AddRequired("images", &images, "Folder of photos.");
  m.Add("disparity",
        &disparity,
        "Folder of <stem>.npy/.npz/.png disparities (Depth Anything V2 16-bit "
        "PNG); "
        "empty: procedural depth.");
  m.AddRequired(
      "output", &output, "Output folder (reference layout + shards/).");
  m.Add("num_threads", &num_threads, "Threads (0 = all).");
  m.Add("seed", &seed, "Base random seed.");
  m.Add("Views.num_views", &options.num_views, "Novel views per photo.");
  m.AddBool("Views.write_folders",
            &options.write_folders,
            "Write the reference layout.");
  m.AddBool(
      "Views.write_shards", &options.write_shards, "Write shards/*.l2ms.");
  m.Add(
      "Views.photos_per_shard", &options.photos_per_shard, "Photos per shard.");
  m.Add("Views.num_debug",
        &options.num_debug,
        "Photos with debug pictures (-1 = all).");
  m.Add("Views.debug_matches",
        &options.debug_matches,
        "GT matches drawn per debug picture.");
  m.Add("Views.consistency_threshold",
        &options.consistency_threshold,
        "GT depth-consistency test |z - z2| / z2 < this.");
  AddInpaintOptions(&m, &options.view);
  m.Add("Views.relight", &options.relight, "off | consistent | independent.");
  m.AddBool("Views.sky",
            &options.sky,
            "Mask sky (no geometry, depth 0) before lifting.");
  AddLiftingOptions(&m, &options.lifting, &input_kind);
  AddPoseOptions(&m, &options.poses);
  AddRelightOptions(&m, &options.relight_options);
  AddSkyOptions(&m, &options.sky_options);
  if (!m.Parse(argc, argv)) return 0;
  options.seed = static_cast<uint64_t>(seed);
  options.view.raster.num_threads = num_threads;
  options.relight_options.num_threads = num_threads;
  ApplyInputKind(input_kind, &options.lifting);
  Timer timer;
  const int pairs = RunViewsPipeline(images, disparity, output, options);
  std::cout << "Wrote " << pairs << " pairs to " << output << " in "
            << Progress::FormatDuration(timer.ElapsedSeconds()) << "\n";
  return 0;
}

std::vector<std::string> InputFolders(const std::string& list) {
  std::vector<std::string> dirs;
  std::string item;
  std::stringstream ss(list);
  while (std::getline(ss, item, ','))
    if (!item.empty()) dirs.push_back(item);
  if (dirs.empty()) throw std::invalid_argument("--input names no folder");
  return dirs;
}

// Writes the parts of a pair that relight/sky change, atomically per file.
void RewritePair(const std::string& dir,
                 const SynthPair& pair,
                 bool images,
                 bool depths) {
  for (const char* sub :
       {"image1", "image2", "depth1", "depth2", "warp", "warp_back", "meta"})
    fs::create_directories(dir + "/" + sub);
  if (images) {
    cv::imwrite(dir + "/image1/" + pair.name + ".png.tmp.png", pair.image1);
    cv::imwrite(dir + "/image2/" + pair.name + ".png.tmp.png", pair.image2);
    fs::rename(dir + "/image1/" + pair.name + ".png.tmp.png",
               dir + "/image1/" + pair.name + ".png");
    fs::rename(dir + "/image2/" + pair.name + ".png.tmp.png",
               dir + "/image2/" + pair.name + ".png");
  }
  if (depths) {
    WriteNpy(dir + "/depth1/" + pair.name + ".npy", pair.depth1);
    WriteNpy(dir + "/depth2/" + pair.name + ".png.npy", pair.depth2);
    WriteNpy(dir + "/warp/" + pair.name + ".npy", pair.warp12.warp);
    WriteNpy(dir + "/warp_back/" + pair.name + ".npy", pair.warp21.warp);
  }
}

// Copies the whole pair (all folders) when relighting into another folder.
void CopyPairFiles(const std::string& from,
                   const std::string& to,
                   const std::string& name) {
  for (const char* sub : {"depth1",
                          "depth2",
                          "cams",
                          "ext",
                          "warp",
                          "warp_back",
                          "holes",
                          "meta",
                          "image1",
                          "image2"}) {
    if (!DirExists(from + "/" + sub)) continue;
    fs::create_directories(to + "/" + sub);
    for (const std::string& file :
         {name + ".npy", name + ".png.npy", name + ".png", name + ".json"}) {
      const std::string src = from + "/" + sub + "/" + file;
      if (FileExists(src))
        WriteFileAtomic(to + "/" + sub + "/" + file, ReadBinaryFile(src));
    }
  }
}

int RunRelight(int argc, char** argv) {
  std::string input, output, mode = "consistent";
  int seed = 0, num_threads = 0;
  RelightOptions options;
  OptionManager m(
      "synth relight",
      "Stage 2.2: relights `synth views` outputs (image1 and image2 of every "
      "pair) with random point lights + ambient.");
  m.AddRequired(
      "input", &input, "Comma-separated `synth views` output folders.");
  m.Add("output",
        &output,
        "Output folder (one input) or parent (several); empty: in place.");
  m.Add("mode", &mode, "consistent (same lights in both views) | independent.");
  m.Add("seed", &seed, "Base random seed.");
  m.Add("num_threads", &num_threads, "Threads (0 = all).");
  AddRelightOptions(&m, &options);
  if (!m.Parse(argc, argv)) return 0;
  options.num_threads = num_threads;
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument(error);
  const RelightMode relight = ParseRelightMode(mode);
  if (relight == RelightMode::kOff)
    throw std::invalid_argument("--mode off does nothing");
  const std::vector<std::string> dirs = InputFolders(input);
  int total = 0;
  for (const auto& dir : dirs) {
    std::string out = dir;
    if (!output.empty())
      out = dirs.size() == 1 ? output
                             : output + "/" + fs::path(dir).filename().string();
    const std::vector<std::string> names = ListPairs(dir);
    Progress progress("synth relight " + dir,
                      static_cast<int64_t>(names.size()));
    for (const auto& name : names) {
      SynthPair pair = ReadPairFolders(dir, name);
      std::mt19937_64 rng(SeedFor(static_cast<uint64_t>(seed), name, 1000));
      const Lighting light1 = SampleLighting(options, &rng);
      const Lighting light2 =
          relight == RelightMode::kConsistent
              ? TransformLighting(light1, pair.cam2_from_cam1)
              : SampleLighting(options, &rng);
      pair.image1 =
          Relight(pair.image1, pair.depth1, pair.camera1, light1, options);
      pair.image2 =
          Relight(pair.image2, pair.depth2, pair.camera2, light2, options);
      if (out != dir) CopyPairFiles(dir, out, name);
      RewritePair(out, pair, true, false);
      progress.Add();
      ++total;
    }
    progress.Finish();
  }
  std::cout << "Relit " << total << " pairs\n";
  return 0;
}

int RunSky(int argc, char** argv) {
  std::string input, debug_dir;
  double consistency = 0.05;
  bool use_depth = true;
  SkyOptions options;
  OptionManager m(
      "synth sky",
      "Stage 2.3: masks sky in `synth views` outputs: depth := 0 "
      "(unsupervised) in sky of image1 and image2, GT warps updated. "
      "Images without sky stay untouched.");
  m.AddRequired(
      "input", &input, "Comma-separated `synth views` output folders.");
  m.AddBool("use_depth", &use_depth, "Require sky to be far in depth.");
  m.Add("consistency_threshold",
        &consistency,
        "GT depth test used for the new warps.");
  m.Add("debug", &debug_dir, "Folder for sky-mask pictures (empty: none).");
  AddSkyOptions(&m, &options);
  if (!m.Parse(argc, argv)) return 0;
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument(error);
  if (!debug_dir.empty()) fs::create_directories(debug_dir);
  int masked_pairs = 0, total = 0;
  for (const auto& dir : InputFolders(input)) {
    const std::vector<std::string> names = ListPairs(dir);
    Progress progress("synth sky " + dir, static_cast<int64_t>(names.size()));
    for (const auto& name : names) {
      SynthPair pair = ReadPairFolders(dir, name);
      const cv::Mat sky1 =
          DetectSky(pair.image1, use_depth ? pair.depth1 : cv::Mat(), options);
      const cv::Mat sky2 =
          DetectSky(pair.image2, use_depth ? pair.depth2 : cv::Mat(), options);
      const int n =
          MaskSkyDepth(sky1, &pair.depth1) + MaskSkyDepth(sky2, &pair.depth2);
      ++total;
      if (!debug_dir.empty()) {
        cv::Mat pic;
        cv::hconcat(pair.image1, pair.image2, pic);
        cv::Mat mask;
        cv::hconcat(sky1, sky2, mask);
        pic.setTo(cv::Scalar(255, 0, 255), mask);
        cv::imwrite(debug_dir + "/" + name + ".png", pic);
      }
      if (n > 0) {
        pair.warp12 = ComputeGtWarp(pair.depth1,
                                    pair.camera1,
                                    pair.depth2,
                                    pair.camera2,
                                    pair.cam2_from_cam1,
                                    consistency);
        pair.warp21 = ComputeGtWarp(pair.depth2,
                                    pair.camera2,
                                    pair.depth1,
                                    pair.camera1,
                                    pair.cam2_from_cam1.inverse(),
                                    consistency);
        RewritePair(dir, pair, false, true);
        nlohmann::json meta = nlohmann::json::parse(
            ReadBinaryFile(dir + "/meta/" + name + ".json"));
        meta["sky_pixels"] = meta.value("sky_pixels", 0) + n;
        meta["covisibility12"] = pair.warp12.covisibility;
        meta["covisibility21"] = pair.warp21.covisibility;
        WriteFileAtomic(dir + "/meta/" + name + ".json", meta.dump(2) + "\n");
        ++masked_pairs;
      }
      progress.Add();
    }
    progress.Finish();
  }
  std::cout
      << "Sky found in " << masked_pairs << " of " << total
      << " pairs (shards are not rewritten: use `synth views --Views.sky 1` "
         "for sky-masked shards)\n";
  return 0;
}

int RunScene(int argc, char** argv) {
  std::string image, disparity, output, input_kind = "disparity";
  int num_threads = 0, seed = 0;
  SceneOptions options;
  OptionManager m(
      "synth scene",
      "Demo scene: an orbit of views around one lifted photo (its disparity, "
      "or a procedural depth), with the true cameras:\n"
      "OUTPUT/images/view_NN.png, OUTPUT/ground_truth/*.txt (COLMAP text "
      "model), OUTPUT/depth/*.npy, OUTPUT/holes/*.png, OUTPUT/scene.json.");
  m.AddRequired("image", &image, "The photo.");
  m.Add("disparity",
        &disparity,
        ".npy/.npz/.png disparity of the photo (same size); empty: "
        "procedural depth.");
  m.AddRequired("output", &output, "Output folder (created).");
  m.Add("num_views", &options.num_views, "Views on the orbit.");
  m.Add("width", &options.width, "Image width (the photo is cropped to it).");
  m.Add("height", &options.height, "Image height.");
  m.Add("seed", &seed, "Seed (procedural depth, pose jitter).");
  m.Add("num_threads", &num_threads, "Threads (0 = all).");
  m.Add("Scene.focal_fraction",
        &options.focal_fraction,
        "Focal length = this * width.");
  m.Add("Scene.arc_degrees",
        &options.arc_degrees,
        "Yaw swept around the target (degrees).");
  m.Add("Scene.elevation_degrees",
        &options.elevation_degrees,
        "Rise of the cameras mid-arc (degrees).");
  m.Add("Scene.radius",
        &options.radius,
        "Orbit radius / target depth (1: through the photo's camera).");
  m.Add("Scene.jitter_degrees",
        &options.jitter_degrees,
        "Random per-view rotation perturbation (degrees).");
  m.Add("Scene.max_depth_ratio",
        &options.max_depth_ratio,
        "Far depths clamped to this * nearest depth.");
  m.Add("Scene.disparity_offset",
        &options.disparity_offset,
        "Added to disparities before inverting (Middlebury doffs, px).");
  m.AddBool("Scene.fill_unknown_depth",
            &options.fill_unknown_depth,
            "Inpaint unknown disparity pixels and median-filter (5x5).");
  AddInpaintOptions(&m, &options.view);
  // Size and focal come from the Scene options above.
  AddLiftingInputOptions(&m, &options.lifting, &input_kind);
  if (!m.Parse(argc, argv)) return 0;
  options.seed = static_cast<uint64_t>(seed);
  options.view.raster.num_threads = num_threads;
  ApplyInputKind(input_kind, &options.lifting);
  Timer timer;
  const SceneSummary summary = WriteScene(image, disparity, output, options);
  std::cout << "Wrote " << summary.num_views << " views of " << image << " ("
            << (disparity.empty() ? "procedural depth" : disparity) << ") to "
            << output << "/images, true cameras in " << output
            << "/ground_truth; holes filled: "
            << 100 * summary.mean_hole_fraction << " % mean, "
            << 100 * summary.max_hole_fraction << " % max; "
            << Progress::FormatDuration(timer.ElapsedSeconds()) << "\n";
  return 0;
}

}  // namespace

int RunSynthCommand(int argc, char** argv) {
  const std::string usage =
      "Usage: l2m synth <command> [options]   (l2m synth <command> --help)\n\n"
      "  views    photos (+ disparity) -> novel views + dense GT + shards\n"
      "  relight  relight `views` outputs (consistent or independent per "
      "view)\n"
      "  sky      mask sky in `views` outputs (depth := 0)\n"
      "  scene    orbit of views around one lifted photo + true cameras\n";
  if (argc < 2 || std::string(argv[1]) == "--help" ||
      std::string(argv[1]) == "-h") {
    std::cout << usage;
    return argc < 2 ? 1 : 0;
  }
  // Every view allocates and frees several multi-MB images; by default glibc
  // maps such blocks and gives them back to the kernel on free, so each view
  // page-faults them in again (about 40 % of the time of a 512^2 view).
  // Keep them in the heap instead.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  const std::string sub = argv[1];
  if (sub == "views") return RunViews(argc - 1, argv + 1);
  if (sub == "relight") return RunRelight(argc - 1, argv + 1);
  if (sub == "sky") return RunSky(argc - 1, argv + 1);
  if (sub == "scene") return RunScene(argc - 1, argv + 1);
  throw std::invalid_argument("Unknown synth command '" + sub + "'\n" + usage);
}

}  // namespace l2m
