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
  # Reduced-precision GEMMs (--precision tf32 / bf16): only the GEMM-based
  # families change; tolerances scaled as test_cuda_ops.c explains.
  foreach(prec_scale "tf32;100" "bf16;1000")
    list(GET prec_scale 0 prec)
    list(GET prec_scale 1 scale)
    foreach(family gemm conv)
      add_test(NAME gpu_cuda_ops_${prec}_${family}
               COMMAND test_cuda_ops -p ${prec} -s ${scale} ${family})
      set_tests_properties(gpu_cuda_ops_${prec}_${family} PROPERTIES LABELS "gpu"
                           SKIP_RETURN_CODE 77 TIMEOUT 600)
    endforeach()
  endforeach()
  # The convolution in several chunks, as full-size models run it: 4096
  # floats puts one image in each chunk, 65536 several with a shorter last
  # one (lenet conv1: 3+3+2 of 8; resnet20's first conv: 5+3).
  foreach(chunk 4096 65536)
    foreach(family conv net)
      add_test(NAME gpu_cuda_ops_chunk${chunk}_${family} COMMAND test_cuda_ops -c ${chunk} ${family})
      set_tests_properties(gpu_cuda_ops_chunk${chunk}_${family} PROPERTIES LABELS "gpu"
                           SKIP_RETURN_CODE 77 TIMEOUT 600)
    endforeach()
  endforeach()
endif()
# Whole training runs on the GPU against the CPU, NCCL with one rank, tf32 and
# bf16, and (with MPI) two ranks sharing the GPU; see tests/test_gpu_train.py.
if(DLTRAIN_HAVE_CUDA)
  set(dltrain_gpu_mpiexec "")
  if(DLTRAIN_HAVE_MPI AND MPIEXEC_EXECUTABLE)
    set(dltrain_gpu_mpiexec ${MPIEXEC_EXECUTABLE})
  endif()
  add_test(NAME gpu_train
           COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_gpu_train.py
                   $<TARGET_FILE:dltrain> "${dltrain_gpu_mpiexec}")
  set_tests_properties(gpu_train PROPERTIES LABELS "gpu" SKIP_RETURN_CODE 77 TIMEOUT 1800
                       RUN_SERIAL ON)
endif()
