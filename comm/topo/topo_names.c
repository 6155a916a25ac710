/* topo_names.c: device names from the pci.ids database (pciutils / hwdata).
 *
 * sysfs has only numeric ids; the names lspci prints come from pci.ids.  We
 * read it when present and never depend on it: NVML names win when the
 * driver is loaded, and without either the report shows the ids alone. */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char *const default_paths[] = {
    "/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids", "/usr/share/pci.ids",
};

/* "XXXX  Name": returns the id and points *name at the name, or -1. */
static long id_line(const char *line, const char **name)
{
    char id[5];
    for (int i = 0; i < 4; i++) {
        if (!isxdigit((unsigned char)line[i]))
            return -1;
        id[i] = line[i];
    }
    id[4] = '\0';
    if (line[4] != ' ')
        return -1;
    const char *p = line + 4;
    while (*p == ' ')
        p++;
    *name = p;
    return dl_topo_parse_hex(id, 0xffff);
}

/* Fills names for GPUs still unnamed while streaming the file once. */
static void scan_ids(FILE *f, dl_topo *t)
{
    char line[512];
    long vendor = -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (line[0] == 'C' && line[1] == ' ')
            break; /* the class section follows the vendors */
        const char *name = "";
        if (line[0] != '\t') {
            vendor = id_line(line, &name);
            continue;
        }
        if (line[1] == '\t' || vendor < 0)
            continue; /* subsystem lines */
        long device = id_line(line + 1, &name);
        for (int g = 0; g < t->n_gpus; g++) {
            dl_topo_gpu *gpu = &t->gpus[g];
            if (gpu->name_src == DL_TOPO_SRC_NONE && gpu->vendor == vendor &&
                gpu->device == device) {
                dl_topo_sanitize(gpu->name, sizeof gpu->name, name);
                gpu->name_src = DL_TOPO_SRC_PCIIDS;
            }
        }
    }
}

dl_status dl_topo_names_apply(dl_topo *t, const char *pci_ids_path)
{
    FILE *f = NULL;
    if (pci_ids_path)
        f = fopen(pci_ids_path, "r");
    for (size_t i = 0; !pci_ids_path && !f && i < DL_ARRAY_LEN(default_paths); i++)
        f = fopen(default_paths[i], "r");
    if (!f)
        return dl_fail(DL_ERR_IO, "no pci.ids database %s%s", pci_ids_path ? "at " : "found",
                       pci_ids_path ? pci_ids_path : "");
    scan_ids(f, t);
    fclose(f);
    return DL_OK;
}
