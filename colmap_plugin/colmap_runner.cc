#include "colmap_plugin/colmap_runner.h"

#include "l2m_core/util/string.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <regex>
#include <spawn.h>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace l2m {
namespace {

bool IsExecutable(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

std::string TailOfFile(const std::string& path, size_t max_chars) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  return text.size() > max_chars ? "..." + text.substr(text.size() - max_chars)
                                 : text;
}

}  // namespace

std::string FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos)
    return IsExecutable(name) ? name : "";
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (const std::string& dir : SplitString(path, ":")) {
    const std::string candidate = dir + "/" + name;
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

int RunProcess(const std::vector<std::string>& argv,
               const std::string& log_path,
               std::string* output) {
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0)
    throw std::runtime_error("Cannot write log file '" + log_path +
                             "': " + std::strerror(errno));
  const off_t start = ::lseek(fd, 0, SEEK_END);
  {
    std::string header = "\n$";
    for (const auto& a : argv) header += " " + a;
    header += "\n";
    if (::write(fd, header.data(), header.size()) < 0) {
      // A log we cannot write is not worth failing the job over.
    }
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fd, STDERR_FILENO);
  posix_spawn_file_actions_addopen(
      &actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  const int rc = posix_spawn(
      &pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fd);
  if (rc != 0)
    throw std::runtime_error("Cannot start '" + argv[0] +
                             "': " + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (output != nullptr) {
    std::ifstream in(log_path);
    in.seekg(start);
    std::stringstream ss;
    ss << in.rdbuf();
    *output = ss.str();
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

ModelStats ParseModelAnalyzer(const std::string& text) {
  ModelStats s;
  auto find = [&](const std::string& key, double* value) {
    const std::regex re(key + R"(:\s*([0-9.eE+-]+))");
    std::smatch m;
    if (std::regex_search(text, m, re)) {
      *value = std::stod(m[1]);
      return true;
    }
    return false;
  };
  double v = 0;
  if (!find("Registered images", &v)) {
    throw std::runtime_error(
        "colmap model_analyzer printed no 'Registered images' line");
  }
  s.registered_images = static_cast<int>(v);
  if (find("Cameras", &v)) s.num_cameras = static_cast<int>(v);
  if (find(R"(\bImages)", &v)) s.num_images = static_cast<int>(v);
  if (find("Points", &v)) s.num_points3D = static_cast<int>(v);
  if (find("Observations", &v)) s.num_observations = static_cast<long>(v);
  if (find("Mean track length", &v)) s.mean_track_length = v;
  if (find("Mean observations per image", &v))
    s.mean_observations_per_image = v;
  if (find("Mean reprojection error", &v)) s.mean_reprojection_error = v;
  return s;
}

ColmapRunner::ColmapRunner(const std::string& colmap,
                           const std::string& log_path)
    : binary_(FindExecutable(colmap)), log_path_(log_path) {
  if (binary_.empty()) {
    throw std::runtime_error("The colmap program '" + colmap +
                             "' was not found on PATH. Install it "
                             "(Debian/Ubuntu: `apt-get install colmap`) "
                             "or pass --colmap_path /path/to/colmap");
  }
}

std::string ColmapRunner::Version() const {
  std::string out;
  const std::string tmp = log_path_ + ".version";
  RunProcess({binary_, "-h"}, tmp, &out);
  std::remove(tmp.c_str());
  const std::regex re(R"(COLMAP\s+([0-9][^\s]*))");
  std::smatch m;
  return std::regex_search(out, m, re) ? std::string(m[1]) : "unknown";
}

std::string ColmapRunner::Run(const std::string& command,
                              const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {binary_, command};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string output;
  const int rc = RunProcess(argv, log_path_, &output);
  if (rc != 0) {
    throw std::runtime_error("colmap " + command + " failed (exit status " +
                             std::to_string(rc) + "); log '" + log_path_ +
                             "' ends with:\n" + TailOfFile(log_path_, 1500));
  }
  return output;
}

void ColmapRunner::VerifyMatches(
    const std::string& database_path,
    const std::string& pairs_path,
    const std::map<std::string, std::string>& options) const {
  std::vector<std::string> args = {"--database_path",
                                   database_path,
                                   "--match_list_path",
                                   pairs_path,
                                   "--match_type",
                                   "pairs",
                                   "--SiftMatching.use_gpu",
                                   "0"};
  for (const auto& [k, v] : options) {
    args.push_back("--SiftMatching." + k);
    args.push_back(v);
  }
  Run("matches_importer", args);
}

std::vector<std::string> ColmapRunner::Map(
    const std::string& database_path,
    const std::string& image_path,
    const std::string& output_dir,
    const std::map<std::string, std::string>& options) const {
  namespace fs = std::filesystem;
  fs::create_directories(output_dir);
  std::vector<std::string> args = {"--database_path",
                                   database_path,
                                   "--image_path",
                                   image_path,
                                   "--output_path",
                                   output_dir};
  for (const auto& [k, v] : options) {
    args.push_back("--Mapper." + k);
    args.push_back(v);
  }
  Run("mapper", args);
  std::vector<std::string> models;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    if (entry.is_directory() && fs::exists(entry.path() / "images.bin"))
      models.push_back(entry.path().string());
  }
  std::sort(models.begin(), models.end());
  return models;
}

ModelStats ColmapRunner::Analyze(const std::string& model_dir) const {
  return ParseModelAnalyzer(Run("model_analyzer", {"--path", model_dir}));
}

}  // namespace l2m
