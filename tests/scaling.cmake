# Scaling tools: `dltrain predict` (the analytic model, labels cpu;predict)
# and `dltrain bench allreduce` (labels cpu;mpi under mpirun).  See
# docs/scaling.md.
#   ctest --test-dir build -L predict
set(SCALING_WORK ${CMAKE_CURRENT_BINARY_DIR}/scaling)
file(MAKE_DIRECTORY ${SCALING_WORK})

# The model's pure functions against hand calculations (a C unit test).
add_executable(test_predict ${CMAKE_CURRENT_SOURCE_DIR}/test_predict.c
                            ${PROJECT_SOURCE_DIR}/launch/predict_model.c)
target_include_directories(test_predict PRIVATE ${PROJECT_SOURCE_DIR}/launch)
target_link_libraries(test_predict PRIVATE m)
if(TARGET dltopo)
  # cross-checks the PCIe figures with dltrain topo's
  target_link_libraries(test_predict PRIVATE dltopo)
  target_compile_definitions(test_predict PRIVATE DLTRAIN_HAVE_TOPO)
endif()
add_test(NAME predict_model COMMAND test_predict)
set_tests_properties(predict_model PROPERTIES LABELS "cpu;predict" TIMEOUT 60)

# The command: every link name, unknown names, the hand calculations through
# the CLI, JSON, calibration from a bench allreduce file, --link this.
set(PREDICT_TREE "")
if(TARGET topo_mkfixture AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/topo/fixtures/consumer_x8x8.topo)
  # a fixture sysfs tree of our own (two GPUs at PCIe 3.0 x8) for --link this
  set(PREDICT_TREE ${SCALING_WORK}/consumer_x8x8)
  add_test(NAME predict_tree
           COMMAND topo_mkfixture ${CMAKE_CURRENT_SOURCE_DIR}/topo/fixtures/consumer_x8x8.topo
                   ${PREDICT_TREE})
  set_tests_properties(predict_tree PROPERTIES LABELS "cpu;predict" TIMEOUT 60
                       FIXTURES_SETUP predict_tree)
endif()
foreach(case links unknown hand json calibrate bucket this errors)
  add_test(NAME predict_cli_${case}
           COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_predict_cli.py ${DLTRAIN_BIN}
                   ${case} ${SCALING_WORK} "${PREDICT_TREE}")
  set_tests_properties(predict_cli_${case} PROPERTIES LABELS "cpu;predict" TIMEOUT 120)
endforeach()
if(PREDICT_TREE)
  set_tests_properties(predict_cli_this PROPERTIES FIXTURES_REQUIRED predict_tree)
endif()

# bench allreduce alone (the local backend), then under mpirun with 1, 2, 4 ranks.
add_test(NAME bench_allreduce_local
         COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_bench_allreduce.py -
                 ${DLTRAIN_BIN} 1 ${SCALING_WORK})
set_tests_properties(bench_allreduce_local PROPERTIES LABELS "cpu;predict" TIMEOUT 120)
if(DLTRAIN_HAVE_MPI)
  foreach(np 1 2 4)
    add_test(NAME bench_allreduce_np${np}
             COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_bench_allreduce.py
                     ${MPIEXEC_EXECUTABLE} ${DLTRAIN_BIN} ${np} ${SCALING_WORK})
    set_tests_properties(bench_allreduce_np${np} PROPERTIES LABELS "cpu;mpi" TIMEOUT 600
                         RUN_SERIAL ON)
  endforeach()
else()
  message(STATUS "bench allreduce MPI tests skipped: dltrain is built without MPI")
endif()

# The model against published measurements: the validation table of
# docs/scaling.md, each command run as printed there.
add_test(NAME predict_validation
         COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_predict_validation.py
                 ${DLTRAIN_BIN} ${PROJECT_SOURCE_DIR}/docs/scaling.md)
set_tests_properties(predict_validation PROPERTIES LABELS "cpu;predict" TIMEOUT 120)

# Which transport NCCL chose, read from NCCL's own log lines (comm/nccl_log.c).
add_executable(test_nccl_log ${CMAKE_CURRENT_SOURCE_DIR}/test_nccl_log.c)
target_link_libraries(test_nccl_log PRIVATE dlcomm)
add_test(NAME nccl_log COMMAND test_nccl_log ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(nccl_log PROPERTIES LABELS "cpu;sanitize" TIMEOUT 30)

# `dltrain bench copy`: host<->GPU bandwidth with a GPU, one clear line without.
add_test(NAME bench_copy COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_bench_copy.py
                                 ${DLTRAIN_BIN})
set_tests_properties(bench_copy PROPERTIES LABELS "cpu;gpu" TIMEOUT 300)

# `predict --machine` against published 1/2/4/8-GPU measurements
# (tests/data/published_scaling.csv): calibrated at 1 and 2 GPUs, predicting
# 4 and 8.  Bounds: median |error| 5%, worst 150%, at most 17 predictions
# over 30% (what the 68 sweeps give today; docs/scaling.md says which miss
# the 30% goal and why), so a regression fails it; and each case's fit and
# predictions as docs/scaling.md prints them (--doc), so any change shows.
add_test(NAME predict_published
         COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_predict_published.py
                 ${DLTRAIN_BIN} ${CMAKE_CURRENT_SOURCE_DIR}/data/published_scaling.csv 5 150 17
                 --doc ${PROJECT_SOURCE_DIR}/docs/scaling.md)
set_tests_properties(predict_published PROPERTIES LABELS "cpu;predict" TIMEOUT 300)

# `predict --machine`: shipped machines, a sysfs tree and its topo --json,
# calibration, --grad-dtype, several nodes, what-ifs, bad input.
if(PREDICT_TREE)
  add_test(NAME predict_machine
           COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_predict_machine.py
                   ${DLTRAIN_BIN} ${SCALING_WORK}/machine ${PREDICT_TREE})
  set_tests_properties(predict_machine PROPERTIES LABELS "cpu;predict" TIMEOUT 180
                       FIXTURES_REQUIRED predict_tree)
endif()

# `predict --compress`: bytes on the wire and compression compute per GPU count
add_test(NAME predict_compress
         COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_predict_compress.py
                 ${DLTRAIN_BIN})
set_tests_properties(predict_compress PROPERTIES LABELS "cpu;predict" TIMEOUT 120)
