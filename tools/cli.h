// A tiny command-line parser shared by the tools: --name value / --name=value / --flag, with
// help text generated from the declarations and clear errors for unknown or malformed flags; and
// the one exit-status policy every tool follows (run_tool).
#pragma once
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/kernels.h"
#include "tensor/parallel.h"

namespace glimpse::cli {

// OpenMP worker threads spin while idle by default. When anything else runs on the same cores
// (the data pipeline's decoding threads, another process) the spinning steals their time and a
// training step can become tens of times slower. The policy is read once when the OpenMP runtime
// loads, so the tool re-executes itself with OMP_WAIT_POLICY=passive unless the user set it.
inline void use_passive_openmp_threads(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);
  // If re-executing fails we simply continue with the default policy.
}

// The exit statuses of every tool. Scripts and schedulers branch on them, so they mean the same in
// each tool: 2 says "the command line is wrong, retrying cannot help", 1 says "something in the
// world failed" (a missing or corrupt file, a full disk), and an interrupted run reports the signal
// the way a shell does, 128 + its number.
constexpr int kExitSuccess = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int exit_status_for_signal(int signal_number) { return 128 + signal_number; }

// A mistake detectable from the command line alone: an unknown flag, a malformed or out-of-range
// value, a stray argument, flags that do not combine. Everything else is a runtime failure.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class Flags {
 public:
  Flags(std::string program, std::string usage) : program_(std::move(program)), usage_(std::move(usage)) {}

  void option(const std::string& name, const std::string& default_value, const std::string& help) {
    specs_.push_back({name, default_value, help, false});
    values_[name] = default_value;
  }
  void flag(const std::string& name, const std::string& help) {
    specs_.push_back({name, "", help, true});
    values_[name] = "";
  }
  // Arguments that are not flags are refused (a forgotten "--" or a value given to a boolean flag
  // would otherwise be dropped without a word) unless the tool declares that it takes some.
  void accept_positional() { accept_positional_ = true; }
  // Appended to the exit-status line of --help, for the statuses only some tools have.
  void also_exits(const std::string& note) { exit_note_ = note; }

  // Parses argv; prints help and exits 0 on --help; throws UsageError on errors.
  void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::cout << help();
        std::exit(kExitSuccess);
      }
      if (arg.rfind("--", 0) != 0) {
        if (!accept_positional_)
          throw UsageError(program_ + ": unexpected argument '" + arg + "' (" + program_ +
                           " takes only --flags; see --help)");
        positional_.push_back(arg);
        continue;
      }
      std::string name = arg.substr(2), value;
      const size_t eq = name.find('=');
      const bool has_value = eq != std::string::npos;
      if (has_value) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      const Spec* spec = find(name);
      if (!spec) throw UsageError(program_ + ": unknown flag --" + name + " (see --help)");
      if (spec->is_flag) {
        if (has_value) throw UsageError(program_ + ": --" + name + " takes no value");
        values_[name] = "1";
        set_.insert({name, true});
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) throw UsageError(program_ + ": --" + name + " needs a value");
        // "--out --seed 3" means a forgotten value, not a directory named "--seed". Values that
        // start with a single '-' ("--max-steps -1") are still values; --name=--x spells the rare
        // value that really starts with "--".
        const std::string next = argv[i + 1];
        if (next.rfind("--", 0) == 0)
          throw UsageError(program_ + ": --" + name + " needs a value, but is followed by the flag " + next +
                           " (write --" + name + "=" + next + " if that is the value)");
        value = argv[++i];
      }
      values_[name] = value;
      set_.insert({name, true});
    }
  }

  std::string str(const std::string& name) const { return values_.at(name); }
  bool on(const std::string& name) const { return !values_.at(name).empty(); }
  bool given(const std::string& name) const { return set_.count(name) > 0; }
  long long integer(const std::string& name, long long min = -(1LL << 62), long long max = 1LL << 62) const {
    const std::string& v = values_.at(name);
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0')
      throw UsageError(program_ + ": --" + name + " expects an integer, got '" + v + "'");
    if (x < min || x > max) {
      std::ostringstream msg;
      msg << program_ << ": --" << name << " must be in [" << min << ", " << max << "], got " << x;
      throw UsageError(msg.str());
    }
    return x;
  }
  double number(const std::string& name, double min = -1e300, double max = 1e300) const {
    const std::string& v = values_.at(name);
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0')
      throw UsageError(program_ + ": --" + name + " expects a number, got '" + v + "'");
    if (!(x >= min && x <= max)) {
      std::ostringstream msg;
      msg << program_ << ": --" << name << " must be in [" << min << ", " << max << "], got " << v;
      throw UsageError(msg.str());
    }
    return x;
  }
  std::string choice(const std::string& name, const std::vector<std::string>& allowed) const {
    const std::string& v = values_.at(name);
    for (const auto& a : allowed)
      if (a == v) return v;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : " | ") + a;
    throw UsageError(program_ + ": --" + name + " must be one of " + list + ", got '" + v + "'");
  }
  const std::vector<std::string>& positional() const { return positional_; }

  std::string help() const {
    std::ostringstream out;
    out << "usage: " << program_ << " " << usage_ << "\n\noptions:\n";
    for (const Spec& s : specs_) {
      std::string left = "  --" + s.name + (s.is_flag ? "" : " VALUE");
      out << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << s.help;
      if (!s.is_flag && !s.default_value.empty()) out << " (default: " << s.default_value << ")";
      out << "\n";
    }
    out << "  --help                    show this help\n";
    out << "\nexit status: " << kExitSuccess << " success, " << kExitFailure
        << " runtime failure (missing or corrupt file, I/O error), " << kExitUsage
        << " usage error (bad flag, value, argument or combination)" << exit_note_ << "\n";
    return out.str();
  }

 private:
  struct Spec {
    std::string name, default_value, help;
    bool is_flag;
  };
  const Spec* find(const std::string& name) const {
    for (const Spec& s : specs_)
      if (s.name == name) return &s;
    return nullptr;
  }
  std::string program_, usage_, exit_note_;
  bool accept_positional_ = false;
  std::vector<Spec> specs_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> set_;
  std::vector<std::string> positional_;
};

// The --threads and --device flags every tool declares: sets the CPU thread pool's size (0 keeps one
// per core) and returns the device, refusing cuda where this build or machine has none.
inline Device device_from_flags(const Flags& flags, const std::string& tool) {
  const int threads = static_cast<int>(flags.integer("threads", 0, 1024));
  if (threads > 0) parallel::set_num_threads(threads);
  const Device device = flags.choice("device", {"cpu", "cuda"}) == "cuda" ? Device::CUDA : Device::CPU;
  if (device == Device::CUDA && !cuda_available())
    throw std::runtime_error(tool + ": --device cuda, but no CUDA device is available");
  return device;
}

// The checks below run before a tool starts long work (generating a dataset, building a model,
// encoding images), so that a mistyped or unwritable output path costs seconds, not a run. They
// throw std::runtime_error "<program>: --<flag> <path>: <why>" (exit status 1: the command line is
// well formed, the file system disagrees).

// Tries to create (and removes) a file in `dir`: the only test that also holds for root, for
// read-only mounts and for ACLs, where permission bits alone mislead.
inline std::string cannot_create_files_in(const std::string& dir) {
  std::string probe = (dir.empty() ? std::string(".") : dir) + "/.glimpse-write-test-XXXXXX";
  const int fd = mkstemp(probe.data());
  if (fd < 0) return std::strerror(errno);
  close(fd);
  unlink(probe.c_str());
  return "";
}

// An output directory: created when missing (with its parents), and able to take new files.
inline void require_output_directory(const std::string& program, const std::string& flag, const std::string& dir) {
  const std::string where = program + ": --" + flag + " " + dir + ": ";
  if (dir.empty()) throw UsageError(program + ": --" + flag + " needs a value");
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(dir, ec);
  if (std::filesystem::exists(st)) {
    if (std::filesystem::is_regular_file(st)) throw std::runtime_error(where + "is a file, not a directory");
    if (!std::filesystem::is_directory(st)) throw std::runtime_error(where + "is not a directory");
  } else if (!std::filesystem::create_directories(dir, ec) && ec) {
    throw std::runtime_error(where + "cannot create (" + ec.message() + ")");
  }
  const std::string why = cannot_create_files_in(dir);
  if (!why.empty()) throw std::runtime_error(where + "cannot create files there (" + why + ")");
}

// An output file: its directory must exist and take new files (the file is written beside it and
// renamed into place), and the path itself must not be a directory.
inline void require_output_file(const std::string& program, const std::string& flag, const std::string& path) {
  const std::string where = program + ": --" + flag + " " + path + ": ";
  if (path.empty()) throw UsageError(program + ": --" + flag + " needs a value");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw std::runtime_error(where + "is a directory");
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty() && !std::filesystem::is_directory(dir, ec))
    throw std::runtime_error(where + "directory " + dir +
                             (std::filesystem::exists(dir, ec) ? " is not a directory" : " does not exist"));
  const std::string why = cannot_create_files_in(dir);
  if (!why.empty())
    throw std::runtime_error(where + "cannot create files in " + (dir.empty() ? "." : dir) + " (" + why + ")");
}

// Runs a tool's body and turns what escapes it into the policy's exit status and one "error: ..."
// line: UsageError -> 2, any other exception -> 1. The body returns its own status otherwise (1 when
// it skipped some inputs, 128 + signal when interrupted).
template <typename Body>
int run_tool(const std::string& program, Body&& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::filesystem::filesystem_error& e) {
    // what() reads "filesystem error: <operation>: <reason> [<path>]"; lead with the path, as the
    // tools' own messages do.
    std::cerr << "error: " << program << ": " << (e.path1().empty() ? std::string() : e.path1().string() + ": ")
              << e.code().message() << "\n";
    return kExitFailure;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: " << program << ": out of memory\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace glimpse::cli
