# --trace: Chrome trace-event files, the tracer alone, one rank (train and bench train) and two
# MPI ranks (bucket all-reduce inside backward with overlap, after it without).
add_test(NAME trace_single
         COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_trace.py ${DLTRAIN_BIN} single)
set_tests_properties(trace_single PROPERTIES LABELS "cpu;cli" TIMEOUT 300)
if(DLTRAIN_HAVE_MPI)
  add_test(NAME trace_mpi
           COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_trace.py ${DLTRAIN_BIN} mpi
                   ${MPIEXEC_EXECUTABLE})
  set_tests_properties(trace_mpi PROPERTIES LABELS "cpu;mpi" TIMEOUT 300 RUN_SERIAL ON)
endif()

# The tracer itself: NULL tracer, window, full buffers, open spans, bucket rows.
add_executable(test_trace_unit ${CMAKE_CURRENT_SOURCE_DIR}/test_trace_unit.c)
target_link_libraries(test_trace_unit PRIVATE dlruntime)
add_test(NAME trace_unit COMMAND test_trace_unit ${CMAKE_CURRENT_BINARY_DIR}/trace_unit)
set_tests_properties(trace_unit PROPERTIES LABELS "cpu;sanitize")
