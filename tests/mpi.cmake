# Data-parallel training across MPI ranks: equivalence with one process,
# 2 and 4 ranks, rank failures, and bad input that must not hang any rank.
if(NOT DLTRAIN_HAVE_MPI)
  message(STATUS "MPI tests skipped: dltrain is built without MPI")
  return()
endif()
foreach(case equivalence ranks faults bad_input fashion)
  add_test(NAME mpi_${case}
           COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_mpi.py ${MPIEXEC_EXECUTABLE}
                   ${DLTRAIN_BIN} ${case})
  set_tests_properties(mpi_${case} PROPERTIES LABELS "cpu;mpi" TIMEOUT 1200 RUN_SERIAL ON)
endforeach()
