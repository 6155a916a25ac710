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

# The late loss read on 2 ranks: every rank votes on the step before's loss.
add_test(NAME mpi_loss_read_late
         COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_loss_read.py ${DLTRAIN_BIN}
                 ${MPIEXEC_EXECUTABLE})
set_tests_properties(mpi_loss_read_late PROPERTIES LABELS "cpu;mpi" TIMEOUT 600 RUN_SERIAL ON)

# The compressed gradient average (comm/compress.h) over MPI on 2 and 4 ranks:
# equal to the mean of the ranks' decompressed values, the same on every rank.
add_executable(test_compress_mpi ${CMAKE_CURRENT_SOURCE_DIR}/test_compress_mpi.c)
target_link_libraries(test_compress_mpi PRIVATE dlcomm m)
foreach(np 2 4)
  add_test(NAME mpi_compress_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe -np ${np} $<TARGET_FILE:test_compress_mpi>)
  set_tests_properties(mpi_compress_np${np} PROPERTIES LABELS "cpu;mpi" TIMEOUT 120 RUN_SERIAL ON
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
endforeach()

# --compress on the command line: bad input, exact resume with residuals on
# 1 and 2 ranks, a mismatched --compress, the wire-bytes report, per-layer
# PowerSGD training.
foreach(case bad_input resume mismatch report powersgd warmup)
  add_test(NAME compress_${case}
           COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_compress_cli.py ${MPIEXEC_EXECUTABLE}
                   ${DLTRAIN_BIN} ${case})
  set_tests_properties(compress_${case} PROPERTIES LABELS "cpu;mpi" TIMEOUT 900 RUN_SERIAL ON)
endforeach()
# Across machines: 2 hosts x 2 ranks on a virtual cluster of network
# namespaces (scripts/vcluster.sh); skipped (77) where namespaces cannot be made.
foreach(case ranks equivalence fashion faults)
  add_test(NAME vcluster_${case}
           COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_vcluster.py ${MPIEXEC_EXECUTABLE}
                   ${DLTRAIN_BIN} ${CMAKE_SOURCE_DIR}/scripts/vcluster.sh ${case})
  set_tests_properties(vcluster_${case} PROPERTIES LABELS "cpu;mpi;vcluster" TIMEOUT 1200
                       SKIP_RETURN_CODE 77 RUN_SERIAL ON)
endforeach()
# A real one-machine Slurm (munged, slurmctld, slurmd started and stopped by
# the test): srun -n 4 --mpi=pmix; skipped (77) where it cannot start.
add_test(NAME slurm_srun COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_slurm.py ${DLTRAIN_BIN})
set_tests_properties(slurm_srun PROPERTIES LABELS "cpu;mpi;slurm" TIMEOUT 900
                     SKIP_RETURN_CODE 77 RUN_SERIAL ON)
# A checkpoint write on rank 0 that takes longer than --timeout (a shim that
# delays its rename) must not time the other ranks out.
add_library(test_slow_rename MODULE ${CMAKE_CURRENT_SOURCE_DIR}/slow_rename.c)
target_link_libraries(test_slow_rename PRIVATE ${CMAKE_DL_LIBS})
set_tests_properties(mpi_slow_checkpoint PROPERTIES
                     ENVIRONMENT "DLTRAIN_TEST_SLOW_RENAME=$<TARGET_FILE:test_slow_rename>")
