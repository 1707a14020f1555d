#include "colmap_plugin/option_manager.h"

#include "l2m_core/util/progress.h"
#include "l2m_core/util/string.h"

#include <iostream>
#include <sstream>
#include <stdexcept>

namespace po = boost::program_options;

namespace l2m {

bool ParseBool(const std::string& text, const std::string& name) {
  const std::string t = ToLower(text);
  if (t == "1" || t == "true" || t == "yes" || t == "on") return true;
  if (t == "0" || t == "false" || t == "no" || t == "off") return false;
  throw std::invalid_argument("--" + name + " takes 0 or 1, not '" + text +
                              "'");
}

OptionManager::OptionManager(std::string command, std::string summary)
    : command_(std::move(command)),
      summary_(std::move(summary)),
      options_("Options") {
  options_.add_options()("help,h", "Print this help.");
  options_.add_options()(
      "log_level",
      po::value<int>(&log_level_)->default_value(0),
      "0: progress and info, 1: warnings and errors only, 2: errors only.");
}

void OptionManager::AddBool(const std::string& name,
                            bool* value,
                            const std::string& help) {
  bool_texts_.push_back(std::make_unique<std::string>(*value ? "1" : "0"));
  options_.add_options()(name.c_str(),
                         po::value<std::string>(bool_texts_.back().get())
                             ->default_value(*bool_texts_.back()),
                         help.c_str());
  bools_.emplace_back(name, value);
}

void OptionManager::AddList(const std::string& name,
                            std::vector<std::string>* values,
                            const std::string& help,
                            bool required) {
  auto* semantic =
      po::value<std::vector<std::string>>(values)->multitoken()->composing();
  if (required) semantic->required();
  options_.add_options()(name.c_str(), semantic, help.c_str());
}

std::string OptionManager::Help() const {
  std::ostringstream out;
  out << "Usage: l2m " << command_ << " [options]\n\n"
      << summary_ << "\n\n"
      << options_;
  return out.str();
}

bool OptionManager::Parse(int argc, char** argv) {
  try {
    po::store(po::parse_command_line(argc, argv, options_), vm_);
    if (vm_.count("help")) {
      std::cout << Help();
      return false;
    }
    po::notify(vm_);
  } catch (const po::error& e) {
    throw std::invalid_argument(std::string(e.what()) + " (see `l2m " +
                                command_ + " --help`)");
  }
  for (size_t i = 0; i < bools_.size(); ++i) {
    *bools_[i].second = ParseBool(*bool_texts_[i], bools_[i].first);
  }
  Progress::SetEnabled(log_level_ <= 0);
  return true;
}

}  // namespace l2m
