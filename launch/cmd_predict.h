/* cmd_predict.h: `dltrain predict`, the analytic model of a data-parallel
 * step (predict_model.h) on the command line. */
#ifndef DL_CMD_PREDICT_H
#define DL_CMD_PREDICT_H

/* argv[0] is "predict".  Returns the exit status: 0, 1 when an input file or
 * this machine's topology cannot be used (or `--link this` finds no GPU),
 * 2 for a bad option or an unknown link name. */
int dl_cmd_predict(int argc, char **argv);

#endif
