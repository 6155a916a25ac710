/* topo_internal.h: helpers shared by the comm/topo*.c files; not an API.
 *
 * Everything that touches the file system goes through these readers so
 * that every read is bounded, never follows a path outside the sysfs root by
 * construction, and turns any failure into "unknown" for the caller. */
#ifndef DL_TOPO_INTERNAL_H
#define DL_TOPO_INTERNAL_H

#include "topo.h"

#define DL_TOPO_FULLPATH_LEN 1024

/* root + "/" + rel (+ "/" + attr); returns 0, or -1 if it does not fit. */
int dl_topo_join(char *dst, size_t cap, const char *root, const char *rel, const char *attr);

/* Reads a text attribute: at most cap-1 bytes, trailing whitespace removed.
 * Returns the length, or -1 if the file cannot be opened or read. */
int dl_topo_read_text(const char *root, const char *rel, const char *attr, char *buf, size_t cap);
/* Reads up to cap bytes of a binary attribute; returns bytes read or -1. */
long dl_topo_read_bin(const char *root, const char *rel, const char *attr, unsigned char *buf,
                      size_t cap);
/* Copies text for display: printable ASCII kept, anything else becomes '?'. */
void dl_topo_sanitize(char *dst, size_t cap, const char *src);
/* Copies with truncation, always NUL-terminated. */
void dl_topo_copy(char *dst, size_t cap, const char *src);

/* "0x10de" or "10de" -> value; -1 when not a whole hex number <= max. */
long dl_topo_parse_hex(const char *s, long max);
/* Decimal integer in [lo, hi] with nothing after it; returns 0 on success. */
int dl_topo_parse_int(const char *s, long lo, long hi, long *out);
/* "DDDD:BB:DD.F" (domain 4..8 hex digits); returns 0 if well formed. */
int dl_topo_parse_bdf(const char *s, unsigned *domain, unsigned *bus, unsigned *dev, unsigned *fn);
/* "pciDDDD:BB"; returns 0 if well formed. */
int dl_topo_parse_host_bridge(const char *s, unsigned *domain, unsigned *bus);

/* Reads the four link attributes of a device directory. */
void dl_topo_link_read(const char *root, const char *rel, dl_topo_link *l, int current_only);

/* Appends a warning (silently drops it when the table is full). */
void dl_topo_warn(dl_topo *t, dl_topo_warn_kind kind, int gpu, const char *fmt, ...)
    DL_PRINTF(4, 5);

/* IOMMU units/groups, a GPU's IOMMU group, a port's config space (topo_acs.c). */
void dl_topo_iommu_read(dl_topo *t);
void dl_topo_gpu_iommu_read(const char *root, dl_topo_gpu *g);
void dl_topo_port_config_read(const char *root, dl_topo_port *p);

/* Re-reads NVML's current PCIe generation and width (topo_nvml.c). */
dl_status dl_topo_nvml_refresh(dl_topo *t, const char *lib);

/* Rebuilds t->warnings from the current facts and pairs (topo_warn.c). */
void dl_topo_warnings_compute(dl_topo *t);
/* "GPU0 0000:01:00.0" style label; PCIe generation and speed "gen3 8 GT/s". */
const char *dl_topo_gpu_label(const dl_topo *t, int g, char *buf, size_t cap);
const char *dl_topo_speed_text(double gts, char *buf, size_t cap);
/* "switch downstream port", "root port", ... */
const char *dl_topo_port_kind_name(dl_topo_port_kind kind);
/* "SV RR CR" for the set ACS control bits. */
const char *dl_topo_acs_bits_text(unsigned ctrl, char *buf, size_t cap);

/* The port or GPU link that carries a hop, evaluated at full and current speed. */
typedef struct {
    int width;            /* trained width, 0 unknown */
    double gts_now;       /* current speed */
    double gts_best;      /* best speed both ends support */
    double gbps_now, gbps_best;
} dl_topo_hop_eval;
void dl_topo_hop_evaluate(const dl_topo *t, dl_topo_hop hop, dl_topo_hop_eval *out);

/* A variable's value from envp (NULL: the process environment), or NULL. */
const char *dl_topo_env_get(char *const *envp, const char *name);

#endif
