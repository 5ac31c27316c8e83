# Included from tests/CMakeLists.txt, so the normal (gcc) build and the ASan build (`make
# test-asan`) run every fuzz target without libFuzzer: one program per tests/fuzz/fuzz_<name>.cpp
# linked with replay_main.cpp, and one ctest test fuzz_regressions_<name> that replays the
# target's regression corpus and seeds through it (replay.sh).
file(GLOB FUZZ_TARGET_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fuzz_*.cpp)
add_library(glimpse_fuzz_replay_main STATIC ${CMAKE_CURRENT_LIST_DIR}/replay_main.cpp)
foreach(src ${FUZZ_TARGET_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" target ${name})
  add_executable(fuzz_replay_${target} ${src})
  target_link_libraries(fuzz_replay_${target} PRIVATE glimpse_fuzz_replay_main glimpse_models glimpse_io
                        glimpse_nn glimpse_tensor)
  add_test(NAME fuzz_regressions_${target}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/replay.sh $<TARGET_FILE:fuzz_replay_${target}> ${target})
  # The HDF5 sandbox (io/hdf5.cpp) stays on, as released; its per-read limit is shortened so that
  # a hanging regression input fails within the ctest TIMEOUT instead of stalling it. One thread:
  # nothing here computes much, and the 2-core machines run tests side by side. lsan.supp: under
  # `make test-asan`, libhdf5's own leaks on corrupt files are not ours to report.
  set_tests_properties(fuzz_regressions_${target} PROPERTIES TIMEOUT 600
                       ENVIRONMENT "GLIMPSE_HDF5_SANDBOX_TIMEOUT=5;OMP_NUM_THREADS=1;LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan.supp")
endforeach()
