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
  # --precision auto: TF32 convolutions (scale 100), strict fp32 fully
  # connected GEMMs (the gemm family at the fp32 scale 2 fails under TF32).
  foreach(case "100;conv" "2;gemm")
    list(GET case 0 scale)
    list(GET case 1 family)
    add_test(NAME gpu_cuda_ops_auto_${family} COMMAND test_cuda_ops -p auto -s ${scale} ${family})
    set_tests_properties(gpu_cuda_ops_auto_${family} PROPERTIES LABELS "gpu"
                         SKIP_RETURN_CODE 77 TIMEOUT 600)
  endforeach()
  # cuDNN convolutions (--conv cudnn) against the same references: the conv
  # family in fp32 and tf32, and the whole-network step with its determinism
  # check.
  if(DLTRAIN_HAVE_CUDNN)
    foreach(case "fp32;2;conv" "tf32;100;conv" "fp32;2;net")
      list(GET case 0 prec)
      list(GET case 1 scale)
      list(GET case 2 family)
      add_test(NAME gpu_cuda_ops_cudnn_${prec}_${family}
               COMMAND test_cuda_ops -c cudnn -p ${prec} -s ${scale} ${family})
      set_tests_properties(gpu_cuda_ops_cudnn_${prec}_${family} PROPERTIES LABELS "gpu"
                           SKIP_RETURN_CODE 77 TIMEOUT 600)
    endforeach()
  endif()
  # The compressors' CUDA kernels against the C reference (comm/compress_cuda.h).
  add_executable(test_compress_cuda ${CMAKE_CURRENT_SOURCE_DIR}/test_compress_cuda.c)
  target_link_libraries(test_compress_cuda PRIVATE dlcomm CUDA::cudart m)
  add_test(NAME gpu_compress COMMAND test_compress_cuda)
  set_tests_properties(gpu_compress PROPERTIES LABELS "gpu" SKIP_RETURN_CODE 77 TIMEOUT 120)
  # The whole compressed exchange on GPU memory (tests/test_compress_mpi.c
  # --backend): every compressor, 3 buckets in flight, 2 steps, against the
  # C replay.  One rank without MPI: NCCL's all-gather on one GPU, and the
  # staged backend's copies.  With MPI: the staged backend with 2 ranks
  # sharing the GPUs, and NCCL on 2 ranks (skipped with the reason when there
  # are fewer GPUs than ranks).
  add_executable(test_compress_gpu_exchange ${CMAKE_CURRENT_SOURCE_DIR}/test_compress_mpi.c)
  target_link_libraries(test_compress_gpu_exchange PRIVATE dlcomm m)
  foreach(backend staged nccl)
    add_test(NAME gpu_compress_${backend}_np1
             COMMAND test_compress_gpu_exchange --device cuda --backend ${backend} --local)
    set_tests_properties(gpu_compress_${backend}_np1 PROPERTIES LABELS "gpu"
                         SKIP_RETURN_CODE 77 TIMEOUT 300)
  endforeach()
  if(DLTRAIN_HAVE_MPI AND MPIEXEC_EXECUTABLE)
    foreach(case "staged;2" "nccl;2")
      list(GET case 0 backend)
      list(GET case 1 np)
      add_test(NAME gpu_compress_${backend}_np${np}
               COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe -np ${np}
                       $<TARGET_FILE:test_compress_gpu_exchange> --device cuda
                       --backend ${backend})
      set_tests_properties(gpu_compress_${backend}_np${np} PROPERTIES LABELS "gpu"
                           SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL ON
                           ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
    endforeach()
  endif()
  # The convolution in several chunks, as full-size models run it: 4096
  # floats puts one image in each chunk, 65536 several with a shorter last
  # one (lenet conv1: 3+3+2 of 8; resnet20's first conv: 5+3).
  foreach(chunk 4096 65536)
    foreach(family conv net)
      add_test(NAME gpu_cuda_ops_chunk${chunk}_${family} COMMAND test_cuda_ops -k ${chunk} ${family})
      set_tests_properties(gpu_cuda_ops_chunk${chunk}_${family} PROPERTIES LABELS "gpu"
                           SKIP_RETURN_CODE 77 TIMEOUT 600)
    endforeach()
    # bf16 writes the column buffer in bf16 per chunk and rounds the weights
    # once per call (runtime/cuda_conv.cu conv_forward_bf16): in several chunks too
    add_test(NAME gpu_cuda_ops_bf16_chunk${chunk}_conv
             COMMAND test_cuda_ops -p bf16 -s 1000 -k ${chunk} conv)
    set_tests_properties(gpu_cuda_ops_bf16_chunk${chunk}_conv PROPERTIES LABELS "gpu"
                         SKIP_RETURN_CODE 77 TIMEOUT 600)
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
  # --compress on the GPU: against the CPU, through NCCL, resumed, in bench
  # allreduce, and staged over MPI; see tests/test_gpu_train_compress.py.
  # (Named gpu_train_*: scripts/gpu_check.sh runs the whole-run tests last.)
  add_test(NAME gpu_train_compress
           COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_gpu_train_compress.py
                   $<TARGET_FILE:dltrain> "${dltrain_gpu_mpiexec}")
  set_tests_properties(gpu_train_compress PROPERTIES LABELS "gpu" SKIP_RETURN_CODE 77
                       TIMEOUT 1800 RUN_SERIAL ON)
endif()
# scripts/gpu_check.sh, the one GPU run, checked where there is no GPU: every
# step's command line (dltrain, test_cuda_ops, the comparison scripts), the
# ctest selections and the flow to its end, on this build (DRY_RUN=1: no
# configure, no build; the CPU reference trains 3 steps); and that OUT holds
# its two files only, the summary and the packed logs.
if(DLTRAIN_HAVE_CUDA)
  set(dltrain_dry_out ${CMAKE_CURRENT_BINARY_DIR}/gpu-check-dry)
  add_test(NAME gpu_check_dry_run
           COMMAND bash -c "rm -rf \"$0\" && DRY_RUN=1 BUILD=\"$1\" OUT=\"$0\" PYTHON=\"$2\" bash \"$3\" && test \"$(ls \"$0\" | tr '\\n' ' ')\" = 'logs.tar.gz summary.txt '"
                   ${dltrain_dry_out} ${CMAKE_BINARY_DIR} ${DLTRAIN_PYTHON}
                   ${CMAKE_SOURCE_DIR}/scripts/gpu_check.sh)
  set_tests_properties(gpu_check_dry_run PROPERTIES LABELS "cpu;cli" TIMEOUT 600)
endif()
# scripts/bench_compare_gpu.py's verdicts (fake tools, no GPU needed): a
# failing bf16 run fails the comparison instead of showing the tf32 figure.
add_test(NAME bench_compare_gpu_verdicts
         COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_bench_compare_gpu.py)
set_tests_properties(bench_compare_gpu_verdicts PROPERTIES LABELS "cpu;cli" TIMEOUT 120)
