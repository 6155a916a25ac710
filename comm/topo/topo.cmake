# comm/topo/topo.cmake: dltopo, GPU topology detection from sysfs (dltrain topo)
# and the machine model that turns a topology into all-reduce cost.
# Pure C over a sysfs root directory; NVML and the CUDA driver are opened
# with dlopen at run time, so the only link dependency is libdl.
add_library(dltopo STATIC
  ${CMAKE_CURRENT_LIST_DIR}/topo_discover.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_pci.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_acs.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_pairs.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_warn.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_names.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_nvml.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_wake.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_bind.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_report.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_json.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_cost.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_machine.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_machine_topo.c
  ${CMAKE_CURRENT_LIST_DIR}/topo_json_read.c)
target_include_directories(dltopo PUBLIC ${CMAKE_CURRENT_LIST_DIR})
# dlruntime provides common.h (dl_status, dl_fail); m for fabs/isfinite.
target_link_libraries(dltopo PUBLIC dlruntime ${CMAKE_DL_LIBS} m)
