// Compares the tensors of two checkpoints (/model and /optimizer) within a tolerance, for runs
// that should agree up to float rounding but not bit for bit (checkpoint_digest is the bit-exact
// check): data-parallel training on N ranks against one process (tests/dist/). Files without
// those groups (feature caches) are compared dataset by dataset from the root.
//
//   checkpoint_compare A.h5 B.h5 RTOL [PREFIX]
//
// Per tensor, passes when max|a - b| <= RTOL * max|a| (max|a| over the tensor: a relative error
// measured against the tensor's scale, so that elements near zero, where rounding noise is
// relatively large, do not dominate). Only datasets whose path starts with PREFIX (default: all)
// are compared. Prints the worst tensor and the largest ratio max|a - b| / max|a| found; exit 0
// pass, 1 fail (or a tensor missing, or shapes differ), 2 usage.
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>

#include "io/hdf5.h"

using namespace glimpse;

namespace {

struct Worst {
  std::string path;
  double ratio = 0, diff = 0, scale = 0;
  int compared = 0;
  bool failed = false;
};

void compare_group(const H5File& a, const H5File& b, const std::string& group, const std::string& prefix,
                   double rtol, Worst& worst) {
  for (const H5Child& child : a.list(group)) {
    const std::string path = (group == "/" ? "" : group) + "/" + child.name;
    if (child.kind == H5ObjectKind::group) {
      compare_group(a, b, path, prefix, rtol, worst);
      continue;
    }
    if (child.kind != H5ObjectKind::dataset || path.rfind(prefix, 0) != 0) continue;
    if (!b.exists(path)) {
      std::cout << path << ": missing in the second checkpoint\n";
      worst.failed = true;
      continue;
    }
    const ArrayData x = a.read(path), y = b.read(path);
    if (x.shape != y.shape) {
      std::cout << path << ": shapes differ\n";
      worst.failed = true;
      continue;
    }
    double diff = 0, scale = 0;
    for (size_t i = 0; i < x.data.size(); ++i) {
      diff = std::max(diff, std::fabs(double(x.data[i]) - double(y.data[i])));
      scale = std::max(scale, std::fabs(double(x.data[i])));
    }
    if (!std::isfinite(diff)) diff = INFINITY;
    const double ratio = scale > 0 ? diff / scale : (diff > 0 ? INFINITY : 0.0);
    ++worst.compared;
    if (ratio > worst.ratio || worst.path.empty()) worst = {path, ratio, diff, scale, worst.compared, worst.failed};
    if (diff > rtol * scale) {
      std::cout << path << ": max|a-b| " << diff << " > " << rtol << " * max|a| " << scale << "\n";
      worst.failed = true;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::cerr << "usage: checkpoint_compare A.h5 B.h5 RTOL [PREFIX]\n";
    return 2;
  }
  const double rtol = std::atof(argv[3]);
  const std::string prefix = argc == 5 ? argv[4] : "/";
  try {
    H5File a = H5File::open_read(argv[1]), b = H5File::open_read(argv[2]);
    Worst worst;
    // A checkpoint's tensors are under /model and /optimizer; any other file (a feature cache) is
    // compared whole.
    if (a.exists("/model") || a.exists("/optimizer")) {
      for (const char* group : {"/model", "/optimizer"})
        if (a.exists(group)) compare_group(a, b, group, prefix, rtol, worst);
    } else {
      compare_group(a, b, "/", prefix, rtol, worst);
    }
    if (worst.compared == 0) {
      std::cout << "no tensor under " << prefix << "\n";
      return 1;
    }
    std::cout << worst.compared << " tensors compared; largest max|a-b|/max|a| = " << worst.ratio << " ("
              << worst.path << ": " << worst.diff << " of " << worst.scale << "); tolerance " << rtol << "\n";
    return worst.failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
