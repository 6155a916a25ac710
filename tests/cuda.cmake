# GPU tests: the CUDA device table (runtime/device_cuda.h) against the CPU
# reference, op by op and over a whole training step.  Label "gpu":
#   ctest --test-dir build -L gpu
# Built whenever CUDA is found, so a .cu or test that does not compile fails
# the build.  On a machine without a GPU (or driver) the test prints
# "SKIPPED: no CUDA GPU (<reason>)" and exits 77, reported as skipped;
# DLTRAIN_REQUIRE_GPU=1 in the environment turns that into a failure.
if(DLTRAIN_HAVE_CUDA)
  add_executable(test_cuda_ops ${CMAKE_CURRENT_SOURCE_DIR}/test_cuda_ops.c)
  target_link_libraries(test_cuda_ops PRIVATE dl_op_cases dlmodels dlruntime m)
  add_test(NAME gpu_cuda_ops COMMAND test_cuda_ops)
  set_tests_properties(gpu_cuda_ops PROPERTIES LABELS "gpu" SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
