# Tests that drive the dltrain executable.  Python drivers run under Debian's
# /usr/bin/python3 (the one python3-torch installs into).
find_program(DLTRAIN_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT DLTRAIN_PYTHON)
  find_program(DLTRAIN_PYTHON NAMES python3 REQUIRED)
endif()
set(DLTRAIN_BIN $<TARGET_FILE:dltrain>)
set(DLTRAIN_TESTS ${CMAKE_CURRENT_SOURCE_DIR})

add_test(NAME bad_input COMMAND ${DLTRAIN_PYTHON} ${DLTRAIN_TESTS}/test_bad_input.py ${DLTRAIN_BIN})
set_tests_properties(bad_input PROPERTIES LABELS "cpu;cli" TIMEOUT 600)
