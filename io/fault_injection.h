// Fault injection for the kill-and-resume tests: GLIMPSE_FAULT_KILL=<point>:<n> makes the process
// kill itself with SIGKILL (no handlers, no cleanup: what kill -9 or a power cut does) the n-th
// time it reaches the named point. Unset, a point costs one branch on a cached flag.
//
// Points: "checkpoint-written" (a checkpoint's temporary file is complete, not yet renamed),
// "checkpoint-renamed" (renamed, directory not yet synced), "step" (after an optimizer step,
// before its log row), "validation" (inside the end-of-epoch validation).
#pragma once

namespace glimpse {

void fault_point(const char* name);

}  // namespace glimpse
