// Fault injection (see fault_injection.h).
#include "io/fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace glimpse {

namespace {

struct FaultSetting {
  std::string point;
  long hit = 0;
};

const FaultSetting* setting() {
  static const FaultSetting* parsed = []() -> const FaultSetting* {
    const char* text = std::getenv("GLIMPSE_FAULT_KILL");
    if (text == nullptr) return nullptr;
    const std::string value = text;
    const size_t colon = value.rfind(':');
    auto* result = new FaultSetting{value.substr(0, colon), 1};
    if (colon != std::string::npos) result->hit = std::strtol(value.c_str() + colon + 1, nullptr, 10);
    return result;
  }();
  return parsed;
}

}  // namespace

void fault_point(const char* name) {
  const FaultSetting* fault = setting();
  if (fault == nullptr || fault->point != name) return;
  static std::atomic<long> hits{0};
  if (++hits == fault->hit) ::kill(::getpid(), SIGKILL);
}

}  // namespace glimpse
