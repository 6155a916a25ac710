# Rank groups and `dltrain scale` (labels cpu;mpi, serial: they oversubscribe
# the cores).  See docs/scaling.md.
#   ctest --test-dir build -R 'comm_split|scale_'
if(NOT DLTRAIN_HAVE_MPI)
  message(STATUS "scale tests skipped: dltrain is built without MPI")
  return()
endif()

# The MPI backend's split, 4 ranks: groups all-reduce among their members only.
add_executable(test_comm_split ${CMAKE_CURRENT_SOURCE_DIR}/test_comm_split.c)
target_link_libraries(test_comm_split PRIVATE dlcomm m)
add_test(NAME comm_split_np4
         COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe -np 4 $<TARGET_FILE:test_comm_split>)
set_tests_properties(comm_split_np4 PROPERTIES LABELS "cpu;mpi" TIMEOUT 120 RUN_SERIAL ON
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")

# `dltrain scale` with 1, 2 and 4 ranks (tiny steps), and bad input.
set(SCALE_WORK ${CMAKE_CURRENT_BINARY_DIR}/scale)
foreach(case np1 np2 np4 bad_input)
  add_test(NAME scale_${case}
           COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_scale.py ${MPIEXEC_EXECUTABLE}
                   ${DLTRAIN_BIN} ${case} ${SCALE_WORK})
  set_tests_properties(scale_${case} PROPERTIES LABELS "cpu;mpi" TIMEOUT 300 RUN_SERIAL ON)
endforeach()

# The lane/transport A/B driver (scripts/ab_compare.py): two launches, one with
# NCCL_P2P_DISABLE=1, compared figure by figure.
add_test(NAME scale_ab_compare
         COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_ab_compare.py
                 ${PROJECT_SOURCE_DIR}/scripts/ab_compare.py ${DLTRAIN_BIN} ${MPIEXEC_EXECUTABLE})
set_tests_properties(scale_ab_compare PROPERTIES LABELS "cpu;mpi" TIMEOUT 300 RUN_SERIAL ON)
