/* topo_main.c: stand-alone driver for `dltrain topo` (the dltopo_cli test
 * executable), so the command can be tested without the whole dltrain. */
#include "cmd_topo.h"

int main(int argc, char **argv)
{
    return dl_cmd_topo(argc, argv);
}
