#pragma once

// Runs the `colmap` binary (Debian's 3.8, or any newer one on PATH) headless:
// every SIFT GPU option off, so no Qt/OpenGL context is ever created.

#include <map>
#include <string>
#include <vector>

namespace l2m {

// Absolute path of an executable found on PATH (or `name` itself when it
// contains a '/' and is executable); "" when not found.
std::string FindExecutable(const std::string& name);

// Runs argv[0] with arguments, stdout+stderr appended to `log_path` (and to
// *output when given). Returns the exit status (128+signal when killed).
int RunProcess(const std::vector<std::string>& argv,
               const std::string& log_path,
               std::string* output = nullptr);

struct ModelStats {
  int num_cameras = 0;
  int num_images = 0;
  int registered_images = 0;
  int num_points3D = 0;
  long num_observations = 0;
  double mean_track_length = 0;
  double mean_observations_per_image = 0;
  double mean_reprojection_error = 0;
};

// Parses `colmap model_analyzer` output (3.8 prints to stdout; 4.x logs the
// same lines with a glog prefix). Throws if no "Registered images" line.
ModelStats ParseModelAnalyzer(const std::string& text);

class ColmapRunner {
 public:
  // `colmap` = binary name or path; throws std::runtime_error with an install
  // hint when it cannot be found.
  ColmapRunner(const std::string& colmap, const std::string& log_path);

  const std::string& binary() const { return binary_; }
  std::string Version() const;

  // Throws std::runtime_error with the tail of the log on a non-zero exit.
  std::string Run(const std::string& command,
                  const std::vector<std::string>& args) const;

  // colmap matches_importer --match_type pairs: verifies matches already in
  // the database (no descriptors needed).
  void VerifyMatches(const std::string& database_path,
                     const std::string& pairs_path,
                     const std::map<std::string, std::string>& options) const;

  // colmap mapper into output_dir (created); returns the model folders.
  std::vector<std::string> Map(
      const std::string& database_path,
      const std::string& image_path,
      const std::string& output_dir,
      const std::map<std::string, std::string>& options) const;

  ModelStats Analyze(const std::string& model_dir) const;

 private:
  std::string binary_;
  std::string log_path_;
};

}  // namespace l2m
