/* predict_model.h: the analytic model behind `dltrain predict` (and, later,
 * `dltrain scale`): named links, ring all-reduce time, how much of it
 * backward hides, and host-to-device transfer time.  Pure functions of their
 * arguments, no I/O, so tests call them directly (tests/test_predict.c).
 *
 * Units: bytes, GB/s = 1e9 bytes/s per direction, milliseconds for step
 * times, microseconds for latencies.  See docs/scaling.md for the model. */
#ifndef DL_PREDICT_MODEL_H
#define DL_PREDICT_MODEL_H

#include <stddef.h>

typedef enum { DL_LINK_PCIE, DL_LINK_NVLINK, DL_LINK_IB, DL_LINK_ETH } dl_link_kind;

typedef struct {
    const char *name;      /* "pcie3x16" */
    dl_link_kind kind;
    double gbps;           /* data GB/s per direction, after line encoding */
    double alpha_us;       /* default latency per ring step */
    const char *what;      /* one line: the arithmetic and its source */
} dl_link;

/* The table (NULL-terminated by name) and a lookup; NULL for an unknown name. */
extern const dl_link dl_links[];
const dl_link *dl_link_find(const char *name);
/* "pcie3x16, pcie3x8, ..." for messages. */
const char *dl_link_names(void);

/* PCIe GB/s per direction: GT/s x lanes x encoding / 8 (128b/130b from gen3
 * on, 8b/10b for gen1-2); gen 1..5, 0 otherwise. */
double dl_pcie_gbps(int gen, int lanes);
/* Bandwidth each of `sharers` GPUs gets when they use one link at once. */
double dl_link_share_gbps(double gbps, int sharers);

/* Ring all-reduce of `bytes` over n ranks, at `gbps` per rank and direction
 * and alpha_us per step: 2(n-1)/n x bytes / bandwidth + 2(n-1) x alpha.
 * Milliseconds; 0 for n <= 1. */
double dl_ring_allreduce_ms(double bytes, int n, double gbps, double alpha_us);
/* The bus-bandwidth factor 2(n-1)/n (0 for n <= 1), as nccl-tests defines it. */
double dl_ring_bus_factor(int n);
/* Time to move bytes over a link of gbps (input batches, H2D), milliseconds. */
double dl_transfer_ms(double bytes, double gbps);

/* One data-parallel step, as the overlap model sees it. */
typedef struct {
    double compute_ms;   /* forward + backward + optimizer on one GPU (input) */
    double forward_ms;   /* compute_ms x (1 - backward fraction) */
    double backward_ms;  /* compute_ms x backward fraction (2/3 by default) */
    int buckets;         /* ceil(grad_bytes / bucket_bytes) */
    double comm_ms;      /* all buckets' all-reduce time, back to back */
    double exposed_ms;   /* communication still running when backward ends */
    double hidden_ms;    /* comm_ms - exposed_ms */
    double step_ms;      /* compute_ms + exposed_ms */
} dl_step_model;

typedef struct {
    double compute_ms;      /* per step on one GPU, per-GPU batch */
    double backward_frac;   /* share of compute_ms that is backward (2/3) */
    double grad_bytes;      /* gradient bytes all-reduced per step */
    double bucket_bytes;    /* bucket size (the last bucket may be smaller) */
    int overlap;            /* 0: all buckets start after backward (--no-overlap) */
    int gpus;               /* ranks in the ring */
    double gbps;            /* ring bandwidth per rank and direction */
    double alpha_us;        /* latency per ring step */
} dl_step_inputs;

/* Buckets become ready uniformly in bytes during backward (bucket i when
 * backward has produced the first i buckets' bytes); the link reduces one
 * bucket at a time in order, each starting when it is ready and the previous
 * one is done.  The last bucket becomes ready as backward ends, so at least
 * its own time is always exposed.  Returns 0, or -1 for invalid inputs. */
int dl_step_predict(const dl_step_inputs *in, dl_step_model *out);

/* Forward-pass multiply-adds per sample -> training FLOPs per sample
 * (forward 2 x MACs, backward twice that: 6 x MACs). */
double dl_train_flops_per_sample(double macs_per_sample);

/* Fits a link from `bench allreduce` measurements of one run over `world`
 * ranks (bytes[i], time_us[i], i < n): the bandwidth is the best bus
 * bandwidth measured (bytes x 2(n-1)/n / time), alpha the smallest message's
 * time less its bandwidth term, over its 2(n-1) steps (>= 0).  Returns 0, or
 * -1 when it cannot (world < 2, no positive times). */
int dl_link_calibrate(int world, const double *bytes, const double *time_us, int n,
                      double *gbps, double *alpha_us);

#endif
