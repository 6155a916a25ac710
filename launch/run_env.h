/* run_env.h: what every measurement records about where it ran, so a figure
 * can be reproduced: the environment variables that change how communication
 * and compute behave, the machine, and each GPU's PCIe link as read now. */
#ifndef DL_RUN_ENV_H
#define DL_RUN_ENV_H

#include <stddef.h>
#include <stdio.h>

/* Whether a variable is recorded: NCCL_*, UCX_*, FI_*, I_MPI_*, MV2_*, MPICH_*,
 * OMP_*, OPENBLAS_*, CUDA_VISIBLE_DEVICES, and OMPI_MCA_* except the
 * launcher's own bookkeeping (orte_*, ess*, pmix, initial_wdir, ...). */
int dl_run_env_recorded(const char *name_eq_value);
/* The recorded variables as "NAME=value" lines; returns how many. */
int dl_run_env_text(char *out, size_t cap);
/* The same as one JSON object {"NAME":"value",...}. */
void dl_run_env_json(FILE *f);
/* One line: host, CPU model, cores online. */
void dl_run_machine(char *out, size_t cap);

/* Each GPU's PCIe link read now (generation and width, current and maximum),
 * as text lines and as a JSON array; "" / [] on a machine without GPUs.
 * Returns the number of GPUs. */
int dl_run_gpu_links(char *text, size_t cap, FILE *json);

/* What NCCL chose (comm/nccl_log.h): {"version":"2.21.5","routes":"0->1 P2P/IPC; ..."},
 * both "" when NCCL was not used; and the same as one line of text (returns 0
 * and writes "" when NCCL was not used). */
void dl_run_nccl_json(FILE *f);
int dl_run_nccl_text(char *out, size_t cap);

#endif
