// Eigen's Core, included through here by every file that uses it.
//
// GCC 12's AVX-512 intrinsics header initialises a variable from itself (`__m512 __Y = __Y;` in
// its _mm512_undefined_* helpers), which -Wmaybe-uninitialized / -Wuninitialized then report
// wherever Eigen's vectorised code inlines one of them: over a thousand false warnings in a build
// with -march=native on a processor with AVX-512 (GCC bug 105593, fixed in GCC 13). Diagnostic
// pragmas apply by source location, so silencing the two warnings only while the headers are read
// leaves them on for glimpse's own code.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <Eigen/Core>
#pragma GCC diagnostic pop
#else
#include <Eigen/Core>
#endif
