/* fuzz_sysfs.c: the sysfs attribute parsers of topology discovery
 * (comm/topo/topo_pci.c): link speed and width, CPU lists, hex and decimal
 * attributes, PCI addresses, host bridge names, PCIe port type from config
 * space, and the sanitiser that makes names safe for reports.
 *
 * Input: a selector byte, then the attribute text (made NUL-terminated, as
 * the bounded reader returns it) or, for the port type, raw config bytes.
 * Results are checked against what each parser promises. */
#include <stdlib.h>
#include <string.h>

#include "topo.h"
#include "topo_internal.h"

static void text_parsers(int which, const char *s)
{
    long v;
    unsigned d, b, dev, fn;
    int first;
    switch (which % 8) {
    case 0: {
        double gts = dl_topo_parse_speed(s);
        if (gts != 0 && dl_topo_gen_from_gts(gts) == 0)
            abort();
        break;
    }
    case 1: {
        int w = dl_topo_parse_width(s);
        if (w < 0 || w > 32)
            abort();
        break;
    }
    case 2: {
        int n = dl_topo_cpulist_count(s, &first);
        if (n == 0 || (n > 0 && first < 0))
            abort();
        break;
    }
    case 3:
        if (dl_topo_parse_hex(s, 0xffff) > 0xffff)
            abort();
        break;
    case 4:
        if (dl_topo_parse_int(s, -5, 4096, &v) == 0 && (v < -5 || v > 4096))
            abort();
        break;
    case 5:
        if (dl_topo_parse_bdf(s, &d, &b, &dev, &fn) == 0 && (b > 0xff || dev > 31 || fn > 7))
            abort();
        break;
    case 6:
        if (dl_topo_parse_host_bridge(s, &d, &b) == 0 && b > 0xff)
            abort();
        break;
    default: {
        char out[64];
        dl_topo_sanitize(out, sizeof out, s);
        if (strlen(out) >= sizeof out || strchr(out, '"') || strchr(out, '\\'))
            abort();
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0];
    data++, size--;
    if (which >= 0x80) {
        int type = dl_topo_pcie_port_type(data, size);
        (void)type;
        return 0;
    }
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    text_parsers(which, s);
    free(s);
    return 0;
}
