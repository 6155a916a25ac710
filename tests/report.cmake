# The HTML report (launch/report/report_html.c, report_svg.c): a fixture writes it
# from sample data; test_report_html.py checks its structure and renders it
# in headless Chromium to check the charts are drawn.  Labels cpu;report.
#   ctest --test-dir build -L report
# DLTRAIN_SKIP_BROWSER=1 skips the rendering test when Chromium is absent.
set(REPORT_WORK ${CMAKE_CURRENT_BINARY_DIR}/report)
file(MAKE_DIRECTORY ${REPORT_WORK})

add_executable(report_fixture ${CMAKE_CURRENT_SOURCE_DIR}/report_fixture.c
                              ${PROJECT_SOURCE_DIR}/launch/report/report_html.c
                              ${PROJECT_SOURCE_DIR}/launch/report/report_svg.c
                              ${PROJECT_SOURCE_DIR}/launch/predict_model.c)
target_include_directories(report_fixture PRIVATE ${PROJECT_SOURCE_DIR}/launch ${PROJECT_SOURCE_DIR}/launch/report)
target_link_libraries(report_fixture PRIVATE dlruntime m)

foreach(case structure render)
  add_test(NAME report_html_${case}
           COMMAND ${DLTRAIN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_report_html.py
                   $<TARGET_FILE:report_fixture> ${case} ${REPORT_WORK}/${case})
  set_tests_properties(report_html_${case} PROPERTIES LABELS "cpu;report" TIMEOUT 180
                       SKIP_RETURN_CODE 77)
endforeach()
# the page carries producer strings: run the writer under ASan/UBSan too
set_tests_properties(report_html_structure PROPERTIES LABELS "cpu;report;sanitize")
