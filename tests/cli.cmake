# Tests that drive the dltrain executable.  Python drivers run under Debian's
# /usr/bin/python3 (the one python3-torch installs into).
find_program(DLTRAIN_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT DLTRAIN_PYTHON)
  find_program(DLTRAIN_PYTHON NAMES python3 REQUIRED)
endif()
set(DLTRAIN_BIN $<TARGET_FILE:dltrain>)
set(DLTRAIN_TESTS ${CMAKE_CURRENT_SOURCE_DIR})

add_test(NAME bad_input COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_bad_input.py ${DLTRAIN_BIN})
set_tests_properties(bad_input PROPERTIES LABELS "cpu;cli;sanitize" TIMEOUT 600)
add_test(NAME hostile_input COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_hostile_input.py ${DLTRAIN_BIN})
set_tests_properties(hostile_input PROPERTIES LABELS "cpu;cli;sanitize" TIMEOUT 900)

# Each step's loss read one step late reports what a read right after
# forward does (--sync-loss): the same JSON lines in order, checkpoints, NaN stop.
add_test(NAME loss_read_late
         COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_loss_read.py ${DLTRAIN_BIN})
set_tests_properties(loss_read_late PROPERTIES LABELS "cpu;cli" TIMEOUT 600)

add_test(NAME resume_bit_identical
         COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_resume.py ${DLTRAIN_BIN})
set_tests_properties(resume_bit_identical PROPERTIES LABELS "cpu;cli" TIMEOUT 900)

# Proves learning on the real data set; the 5-epoch accuracy runs are in docs/engine.md.
add_test(NAME learn_fashion_mnist
         COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_learn.py ${DLTRAIN_BIN})
set_tests_properties(learn_fashion_mnist PROPERTIES LABELS "cpu;cli;slow" TIMEOUT 1800)

# bench train --compress: the codecs' time per step (no MPI needed; the
# script's other cases are in mpi.cmake).
add_test(NAME compress_bench
         COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_compress_cli.py unused ${DLTRAIN_BIN} bench)
set_tests_properties(compress_bench PROPERTIES LABELS "cpu;cli" TIMEOUT 600)

add_test(NAME cli_help_version COMMAND ${CMAKE_COMMAND} -DDLTRAIN=${DLTRAIN_BIN}
         -P ${DLTRAIN_TESTS}/check_help.cmake)
set_tests_properties(cli_help_version PROPERTIES LABELS "cpu;cli")

# --device / --precision / --gpus / --comm choices and their refusals (any machine).
add_test(NAME device_choice
         COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_device_cli.py ${DLTRAIN_BIN})
set_tests_properties(device_choice PROPERTIES LABELS "cpu;cli" TIMEOUT 300)

# Which GPU a rank opens, for every way a launcher hands out GPUs (per-rank
# CUDA_VISIBLE_DEVICES included): the pure choice function, no GPU needed.
add_executable(test_gpu_choice ${CMAKE_CURRENT_SOURCE_DIR}/test_gpu_choice.c
                               ${PROJECT_SOURCE_DIR}/launch/gpu_choice.c)
target_include_directories(test_gpu_choice PRIVATE ${PROJECT_SOURCE_DIR}/launch)
target_link_libraries(test_gpu_choice PRIVATE dlruntime)
add_test(NAME gpu_choice COMMAND test_gpu_choice)
set_tests_properties(gpu_choice PROPERTIES LABELS "cpu;sanitize" TIMEOUT 30)
