/* train.h: `dltrain train` — options and the training loop. */
#ifndef DL_TRAIN_H
#define DL_TRAIN_H

#include "context.h"

typedef struct dl_train_opts {
    char model[32];
    char data[512];
    int epochs, batch, threads;
    double lr, momentum, weight_decay;
    int nesterov;
    char schedule[16];
    double warmup_epochs;
    char lr_steps[128]; /* step schedule milestones in epochs: "30,60" */
    double lr_gamma;
    long seed;
    char out_dir[512];
    char resume[512];
    char json[512];
    int checkpoint_every; /* steps; 0 = only at the end of each epoch */
    int augment;
    long max_steps;       /* stop (with a checkpoint) after this many steps; 0 = no limit */
    long train_samples;   /* use only the first N training samples; 0 = all */
    int log_every;        /* JSON step records every N steps */
    int eval_batch;
    int no_progress;
    /* data parallelism */
    double bucket_mb;     /* gradient bucket size in MiB */
    int no_overlap;       /* all-reduce only after backward, for comparison */
    int sync_loss;        /* read each step's loss before its backward, for comparison */
    long check_every;     /* replica check every N steps (and at the end) */
    double timeout_s;     /* a collective stalled this long aborts the job */
    int log_all;          /* every rank writes its own log */
    int scale_lr;         /* linear scaling rule: lr x number of ranks */
    int no_bind;          /* leave the CPU affinity alone */
    /* tracing */
    char trace_dir[512];  /* write DIR/trace-rank-R.json; "" = no trace */
    int trace_steps;      /* steps kept in the trace, after the first */
    /* device */
    char device[16];      /* auto, cpu, cuda */
    char precision[16];   /* auto, fp32, tf32, bf16 */
    char conv[16];        /* auto, cudnn, gemm */
    char gpus[256];       /* "0,2": GPU of each node-local rank; may differ per node */
    char comm[16];        /* auto, mpi, nccl */
    char compress[24];    /* none, fp16, bf16, int8, onebit, powersgd[:RANK] */
    double compress_warmup_epochs; /* uncompressed epochs before --compress starts */
    char allreduce[8];    /* auto, flat, hier: how the MPI backend sums gradients */
} dl_train_opts;

/* Options that may legitimately differ between ranks (file names, threads);
 * every other option must agree across ranks. */
int dl_train_option_is_local(const char *name);
/* Compares this rank's options with rank 0's; writes the first difference as
 * "--lr is 0.1 here but 0.05 on rank 0" and returns 1, or returns 0. */
int dl_train_options_differ(const dl_train_opts *mine, const dl_train_opts *rank0, char *what,
                            size_t size);

void dl_train_defaults(dl_train_opts *o);
/* Parse argv; returns -1 to continue, or an exit status (help, usage error). */
int dl_train_parse(dl_train_opts *o, int argc, char **argv);
/* Parse "30,60" into schedule milestones; returns 0 on a malformed list. */
struct dl_schedule;
int dl_train_milestones(const char *text, struct dl_schedule *s);
int dl_train_run(const dl_train_opts *o, dl_ctx *ctx);
/* `dltrain train` */
int dl_cmd_train(int argc, char **argv);

#endif
