// A tiny command-line parser shared by the tools: --name value / --name=value / --flag, with
// help text generated from the declarations and clear errors for unknown or malformed flags.
#pragma once
#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/kernels.h"

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

  // Parses argv; prints help and exits 0 on --help; throws std::invalid_argument on errors.
  void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::cout << help();
        std::exit(0);
      }
      if (arg.rfind("--", 0) != 0) {
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
      if (!spec) throw std::invalid_argument(program_ + ": unknown flag --" + name + " (see --help)");
      if (spec->is_flag) {
        if (has_value) throw std::invalid_argument(program_ + ": --" + name + " takes no value");
        values_[name] = "1";
        set_.insert({name, true});
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) throw std::invalid_argument(program_ + ": --" + name + " needs a value");
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
      throw std::invalid_argument(program_ + ": --" + name + " expects an integer, got '" + v + "'");
    if (x < min || x > max) {
      std::ostringstream msg;
      msg << program_ << ": --" << name << " must be in [" << min << ", " << max << "], got " << x;
      throw std::invalid_argument(msg.str());
    }
    return x;
  }
  double number(const std::string& name, double min = -1e300, double max = 1e300) const {
    const std::string& v = values_.at(name);
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0')
      throw std::invalid_argument(program_ + ": --" + name + " expects a number, got '" + v + "'");
    if (!(x >= min && x <= max)) {
      std::ostringstream msg;
      msg << program_ << ": --" << name << " must be in [" << min << ", " << max << "], got " << v;
      throw std::invalid_argument(msg.str());
    }
    return x;
  }
  std::string choice(const std::string& name, const std::vector<std::string>& allowed) const {
    const std::string& v = values_.at(name);
    for (const auto& a : allowed)
      if (a == v) return v;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : " | ") + a;
    throw std::invalid_argument(program_ + ": --" + name + " must be one of " + list + ", got '" + v + "'");
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
  std::string program_, usage_;
  std::vector<Spec> specs_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> set_;
  std::vector<std::string> positional_;
};

// The --threads and --device flags every tool declares: sets OpenMP's thread count (0 keeps one
// per core) and returns the device, refusing cuda where this build or machine has none.
inline Device device_from_flags(const Flags& flags, const std::string& tool) {
  const int threads = static_cast<int>(flags.integer("threads", 0, 1024));
  if (threads > 0) omp_set_num_threads(threads);
  const Device device = flags.choice("device", {"cpu", "cuda"}) == "cuda" ? Device::CUDA : Device::CPU;
  if (device == Device::CUDA && !cuda_available())
    throw std::runtime_error(tool + ": --device cuda, but no CUDA device is available");
  return device;
}

}  // namespace glimpse::cli
