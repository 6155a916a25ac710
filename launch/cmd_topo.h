/* cmd_topo.h: `dltrain topo`, the PCIe / NUMA / NVLink topology report. */
#ifndef DL_CMD_TOPO_H
#define DL_CMD_TOPO_H

/* argv[0] is "topo".  Returns the process exit status: 0 on success (also
 * when the machine has no GPU), 1 when the sysfs root or an output file
 * cannot be used, 2 for a bad option. */
int dl_cmd_topo(int argc, char **argv);

#endif
