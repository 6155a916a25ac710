# Numerical tests (labels "cpu;numerics"):
#   numerics_ops           every CPU device op against naive direct loops
#                          (tests/op_cases.c: case tables + comparison helpers,
#                          shared with a future test_cuda_ops)
#   numerics_gradcheck     finite-difference gradient checks of every layer
#                          kind and of a small residual network
#   numerics_torch_oracle  PyTorch (float64) as an external oracle: layers,
#                          lenet, resnet20, resnet50, batch norm train/eval,
#                          torch.optim.SGD with momentum + Nesterov + decay
#   numerics_plane_walk    the CUDA batch-norm kernels' division-free index walk
# Run: ctest --test-dir build -L numerics
if(NOT DLTRAIN_PYTHON)
  # Debian's interpreter (the one python3-torch installs into) first.
  find_program(DLTRAIN_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT DLTRAIN_PYTHON)
    find_program(DLTRAIN_PYTHON NAMES python3)
  endif()
endif()

add_library(dl_op_cases STATIC ${CMAKE_CURRENT_SOURCE_DIR}/op_cases.c)
target_include_directories(dl_op_cases PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(dl_op_cases PUBLIC dlruntime m)

add_executable(test_ops ${CMAKE_CURRENT_SOURCE_DIR}/test_ops.c)
target_link_libraries(test_ops PRIVATE dl_op_cases dlruntime)
add_test(NAME numerics_ops COMMAND test_ops)
# the same cases with every convolution GEMM on BLAS (no packed kernels)
add_test(NAME numerics_ops_blas COMMAND test_ops conv)
set_tests_properties(numerics_ops_blas PROPERTIES ENVIRONMENT DLTRAIN_CONV_BLAS=1)

# the division-free index walk of the CUDA batch-norm kernels (runtime/plane_walk.h)
add_executable(test_plane_walk ${CMAKE_CURRENT_SOURCE_DIR}/test_plane_walk.c)
target_link_libraries(test_plane_walk PRIVATE dlruntime)
add_test(NAME numerics_plane_walk COMMAND test_plane_walk)

# gradient bucket boundaries on 256 bytes (comm/bucket.c)
add_executable(test_bucket ${CMAKE_CURRENT_SOURCE_DIR}/test_bucket.c)
target_link_libraries(test_bucket PRIVATE dlcomm)
add_test(NAME bucket_alignment COMMAND test_bucket)
set_tests_properties(bucket_alignment PROPERTIES LABELS "cpu" TIMEOUT 60)

# every model's layers start on 256 bytes in the flat buffers; the padding
# stays zero through SGD steps with momentum and weight decay (runtime/net.c)
add_executable(test_param_layout ${CMAKE_CURRENT_SOURCE_DIR}/test_param_layout.c)
target_link_libraries(test_param_layout PRIVATE dlmodels dlruntime m)
add_test(NAME param_layout COMMAND test_param_layout)
set_tests_properties(param_layout PROPERTIES LABELS "cpu;sanitize" TIMEOUT 300)

add_executable(test_gradcheck ${CMAKE_CURRENT_SOURCE_DIR}/test_gradcheck.c)
target_link_libraries(test_gradcheck PRIVATE dlruntime m)
add_test(NAME numerics_gradcheck COMMAND test_gradcheck)

# oracle_runner writes seeded weights, inputs, outputs and gradients; the
# Python side rebuilds the same networks in torch and compares.
add_executable(oracle_runner ${CMAKE_CURRENT_SOURCE_DIR}/oracle_runner.c)
target_link_libraries(oracle_runner PRIVATE dlmodels dlruntime)
set(DLTRAIN_NUMERICS_TESTS numerics_ops numerics_ops_blas numerics_plane_walk numerics_gradcheck)
if(DLTRAIN_PYTHON)
  add_test(NAME numerics_torch_oracle
           COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_torch_oracle.py
                   $<TARGET_FILE:oracle_runner>)
  # exit 77: no torch/numpy for this interpreter
  set_tests_properties(numerics_torch_oracle PROPERTIES SKIP_RETURN_CODE 77)
  list(APPEND DLTRAIN_NUMERICS_TESTS numerics_torch_oracle)
endif()

set_tests_properties(${DLTRAIN_NUMERICS_TESTS} PROPERTIES LABELS "cpu;numerics" TIMEOUT 300)

# Where a compressor runs (comm/compress_ops.h): the host or CUDA table chosen
# by device, state copies, the one-rank path and the host-backend refusal.
add_executable(test_compress_place ${CMAKE_CURRENT_SOURCE_DIR}/test_compress_place.c)
target_link_libraries(test_compress_place PRIVATE dlcomm m)
add_test(NAME numerics_compress_place COMMAND test_compress_place)
set_tests_properties(numerics_compress_place PROPERTIES LABELS "cpu;numerics")

# Gradient compression (comm/compress.h): codecs against references on
# random and adversarial inputs, error feedback, PowerSGD algebra, wire model.
add_executable(test_compress ${CMAKE_CURRENT_SOURCE_DIR}/test_compress.c)
target_link_libraries(test_compress PRIVATE dlcomm m)
add_test(NAME numerics_compress COMMAND test_compress)
set_tests_properties(numerics_compress PROPERTIES LABELS "cpu;numerics")
# per-layer PowerSGD: plans of a hand-made layout, its wire bytes, error feedback
add_executable(test_compress_plan ${CMAKE_CURRENT_SOURCE_DIR}/test_compress_plan.c)
target_link_libraries(test_compress_plan PRIVATE dlcomm m)
add_test(NAME numerics_compress_plan COMMAND test_compress_plan)
set_tests_properties(numerics_compress_plan PROPERTIES LABELS "cpu;numerics")
# the vectorized array codecs against the per-value definitions, bit for bit
add_executable(test_codec_exact ${CMAKE_CURRENT_SOURCE_DIR}/test_codec_exact.c)
target_link_libraries(test_codec_exact PRIVATE dlcomm m)
add_test(NAME numerics_codec_exact COMMAND test_codec_exact)
set_tests_properties(numerics_codec_exact PROPERTIES LABELS "cpu;numerics" TIMEOUT 120)

add_executable(test_onebit_layers ${CMAKE_CURRENT_SOURCE_DIR}/test_onebit_layers.c)
target_link_libraries(test_onebit_layers PRIVATE dlcomm m)
add_test(NAME numerics_onebit_layers COMMAND test_onebit_layers)
set_tests_properties(numerics_onebit_layers PROPERTIES LABELS "cpu;numerics")
