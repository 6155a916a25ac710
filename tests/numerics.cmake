# Numerical tests: CPU ops against naive implementations, finite-difference
# gradient checks, and PyTorch as an external oracle.  Labels "cpu;numerics".
#   ctest --test-dir build -L numerics
if(NOT DLTRAIN_PYTHON)
  # Debian's interpreter (the one python3-torch installs into) first.
  find_program(DLTRAIN_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT DLTRAIN_PYTHON)
    find_program(DLTRAIN_PYTHON NAMES python3)
  endif()
endif()

# op_cases.c holds the case tables and comparison helpers, shared with a
# future test_cuda_ops (CUDA table under test, CPU as reference).
add_library(dl_op_cases STATIC ${CMAKE_CURRENT_SOURCE_DIR}/op_cases.c)
target_include_directories(dl_op_cases PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(dl_op_cases PUBLIC dlruntime)

add_executable(test_ops ${CMAKE_CURRENT_SOURCE_DIR}/test_ops.c)
target_link_libraries(test_ops PRIVATE dl_op_cases dlruntime)
add_test(NAME numerics_ops COMMAND test_ops)

add_executable(test_gradcheck ${CMAKE_CURRENT_SOURCE_DIR}/test_gradcheck.c)
target_link_libraries(test_gradcheck PRIVATE dlruntime m)
add_test(NAME numerics_gradcheck COMMAND test_gradcheck)

set(DLTRAIN_NUMERICS_TESTS numerics_ops numerics_gradcheck)
set_tests_properties(${DLTRAIN_NUMERICS_TESTS} PROPERTIES LABELS "cpu;numerics" TIMEOUT 300)
