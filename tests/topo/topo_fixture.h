/* topo_fixture.h: build sysfs fixture trees from small text specs.
 *
 * A spec (tests/topo/fixtures/NAME.topo) describes one machine the way Linux
 * shows it: device directories under devices/pciDDDD:BB/..., relative
 * symlinks from bus/pci/devices, attribute files with the exact text kernels
 * write, binary config space.  Building at test time keeps symlinks out of
 * git and makes every tree reproducible.  Line syntax (tokens split on
 * blanks, "double quotes" group, \xNN \n \\ \" escapes inside quotes):
 *
 *   cpu MODALIAS ONLINE            devices/system/cpu/{modalias,online}
 *   package CPULIST ID             physical_package_id of each CPU in the list
 *   iommu NAME                     class/iommu/NAME -> ../../devices/virtual/iommu/NAME
 *   pci PATH key=value ...         a device at devices/PATH, linked from bus/pci/devices
 *       keys: class vendor device numa(=omit) cpus speed maxspeed width maxwidth
 *             config=short|full|loop|none  porttype=root|up|down|pcibridge
 *             acs=HEX acscap=HEX
 *             iommu_group=N iommutype=TEXT  nolink=1
 *   file REL TEXT                  a text file (newline appended)
 *   rawfile REL TEXT               a file with exactly TEXT
 *   hexfile REL HEX                a file with these bytes (NULs allowed)
 *   symlink REL TARGET             a symlink (loops welcome)
 *   mkdir REL                      a directory
 *   rm REL                         remove a file or tree
 *   expect ...                     ignored here; read by the golden test */
#ifndef TOPO_FIXTURE_H
#define TOPO_FIXTURE_H

#include <stddef.h>

/* Removes dir (never following symlinks) and rebuilds it from the spec
 * file.  Returns 0, or -1 with a message in err. */
int topo_fixture_build(const char *spec_path, const char *dir, char *err, size_t cap);
/* rm -rf without following symlinks; 0 on success or if absent. */
int topo_fixture_remove(const char *dir);
/* Splits a spec line into tokens in place; returns the count. */
int topo_fixture_tokens(char *line, char **tok, int max);
/* Writes a file (mkdir -p of its directory), exactly len bytes. */
int topo_fixture_write(const char *dir, const char *rel, const void *data, size_t len);

#endif
