#pragma once

// COLMAP-style command-line options: `--Section.option value`, `--help`,
// on Boost.Program_options. Each command registers the fields of its option
// structs; defaults shown in --help are the structs' own.

#include <boost/program_options.hpp>

#include <memory>
#include <string>
#include <vector>

namespace l2m {

class OptionManager {
 public:
  OptionManager(std::string command, std::string summary);

  template <typename T>
  void Add(const std::string& name, T* value, const std::string& help) {
    options_.add_options()(
        name.c_str(),
        boost::program_options::value<T>(value)->default_value(*value),
        help.c_str());
  }
  template <typename T>
  void AddRequired(const std::string& name, T* value, const std::string& help) {
    options_.add_options()(name.c_str(),
                           boost::program_options::value<T>(value)->required(),
                           help.c_str());
  }
  // A list: `--name a b c`, or `--name a --name b` (values accumulate).
  void AddList(const std::string& name,
               std::vector<std::string>* values,
               const std::string& help,
               bool required = false);
  // A bool flag that takes 0/1/true/false, as COLMAP's.
  void AddBool(const std::string& name, bool* value, const std::string& help);

  // Parses argv (argv[0] = the command name). Returns false after printing
  // help (--help). Throws std::invalid_argument with a usage hint on errors.
  bool Parse(int argc, char** argv);

  std::string Help() const;
  bool WasSet(const std::string& name) const {
    return vm_.count(name) > 0 && !vm_[name].defaulted();
  }

 private:
  std::string command_;
  std::string summary_;
  boost::program_options::options_description options_;
  boost::program_options::variables_map vm_;
  std::vector<std::pair<std::string, bool*>> bools_;
  std::vector<std::unique_ptr<std::string>> bool_texts_;
  int log_level_ = 0;
};

bool ParseBool(const std::string& text, const std::string& name);

}  // namespace l2m
