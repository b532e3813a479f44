// Deletes lab namespaces whose creating process is gone; the ctest fixture around the
// privileged tests, also usable by hand after an interrupted run.
#include <cstdio>
#include <exception>

#include "support/lab.hpp"

int main() {
  try {
    const auto deleted = test::Lab::sweep_stale();
    std::printf("lab_sweep: deleted %zu stale namespace(s)\n", deleted);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lab_sweep: %s\n", e.what());
    return 1;
  }
}
