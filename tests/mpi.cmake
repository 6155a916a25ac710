# Data-parallel training across MPI ranks: equivalence with one process,
# 2 and 4 ranks, rank failures, and bad input that must not hang any rank.
if(NOT DLTRAIN_HAVE_MPI)
  message(STATUS "MPI tests skipped: dltrain is built without MPI")
  return()
endif()
foreach(case equivalence ranks faults bad_input fashion slow_checkpoint)
  add_test(NAME mpi_${case}
           COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_mpi.py ${MPIEXEC_EXECUTABLE}
                   ${DLTRAIN_BIN} ${case})
  set_tests_properties(mpi_${case} PROPERTIES LABELS "cpu;mpi" TIMEOUT 1200 RUN_SERIAL ON)
endforeach()
# A checkpoint write on rank 0 that takes longer than --timeout (a shim that
# delays its rename) must not time the other ranks out.
add_library(test_slow_rename MODULE ${CMAKE_CURRENT_SOURCE_DIR}/slow_rename.c)
target_link_libraries(test_slow_rename PRIVATE ${CMAKE_DL_LIBS})
set_tests_properties(mpi_slow_checkpoint PROPERTIES
                     ENVIRONMENT "DLTRAIN_TEST_SLOW_RENAME=$<TARGET_FILE:test_slow_rename>")
