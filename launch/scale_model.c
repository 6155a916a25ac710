/* scale_model.c: the predicted column of `dltrain scale`, from the same
 * model as `dltrain predict --machine`: the ring over this machine's GPUs
 * (comm/topo/topo_cost.c), its bandwidth calibrated on the run's own
 * all-reduce sweep; and, for CPU ranks, the compute each rank loses when
 * the ranks' threads outnumber the cores. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../comm/compress.h"
#include "../comm/topo/topo_cost.h"
#include "predict_model.h"
#include "scale.h"

/* How much longer one rank's compute takes at `ranks` ranks than at one,
 * when ranks x threads CPU threads share `cores` cores (1 on GPUs). */
double dl_scale_compute_stretch(int ranks, int threads, long cores)
{
    if (cores < 1 || threads < 1)
        return 1;
    double at_n = fmax(1.0, (double)ranks * threads / cores);
    double at_1 = fmax(1.0, (double)threads / cores);
    return at_n / at_1;
}

/* The ring over the first `ranks` GPUs of this machine, with its bandwidth
 * scaled so that the world-sized ring matches the measured sweep. */
static int machine_ring(const scale_run *r, int ranks, double *gbps, double *alpha_us)
{
    static dl_machine m;
    static int loaded = -1;
    if (loaded < 0) {
        dl_topo t;
        char err[256];
        loaded = dl_topo_discover("/sys", &t) == DL_OK &&
                 dl_machine_from_topo(&t, &m, err, sizeof err) == 0;
        dl_topo_free(&t);
    }
    dl_ring_cost at_n, at_world;
    if (!loaded || dl_machine_ring(&m, ranks, 1, NULL, &at_n) != 0)
        return -1;
    *gbps = at_n.gbps, *alpha_us = at_n.alpha_us;
    /* the factors predict --machine --allreduce-json fits (predict_fit_sweep) */
    if (r->link_gbps > 0 && dl_machine_ring(&m, r->ctx->world, 1, NULL, &at_world) == 0 &&
        at_world.alpha_us > 0)
        *gbps *= r->link_gbps / at_world.gbps, *alpha_us *= r->link_alpha_us / at_world.alpha_us;
    return 0;
}

double dl_scale_model_speedup(const scale_run *r, const scale_point *one, int ranks)
{
    if (ranks == 1)
        return 1.0;
    int cpu = strncmp(r->ctx->dev->name, "cpu", 3) == 0;
    double gbps = r->link_gbps, alpha_us = r->link_alpha_us;
    if (!cpu && r->n_gpus >= ranks && machine_ring(r, ranks, &gbps, &alpha_us) != 0)
        gbps = r->link_gbps, alpha_us = r->link_alpha_us;
    if (gbps <= 0)
        return 0;
    double compute_ms = one->compute_ms + one->optimizer_ms;
    double stretch = cpu ? dl_scale_compute_stretch(ranks, r->threads,
                                                    sysconf(_SC_NPROCESSORS_ONLN))
                         : 1.0;
    /* --compress: fewer bytes on the wire, and the codecs' compute on each
     * rank (predict --compress does the same, docs/compression.md) */
    dl_compress_spec spec = {.kind = DL_COMPRESS_NONE, .rank = 0};
    if (dl_compress_parse(r->o->compress, &spec) != DL_OK)
        spec.kind = DL_COMPRESS_NONE; /* refused at start-up already */
    size_t bucket_floats = (size_t)(r->bucket_mb * 1048576.0 / sizeof(float));
    int n_mats = 0;
    dl_grad_matrix *mats =
        dl_compress_by_layer(spec.kind) ? dl_net_grad_matrices_new(&r->net, &n_mats) : NULL;
    /* PowerSGD and onebit per layer over the net's matrices, as the measured run */
    double wire = dl_compress_wire_factor(spec, ranks, r->net.n_params, bucket_floats, mats,
                                          n_mats);
    /* the C codecs' time is the CPU path's; CUDA kernels would take far less
     * (not measured yet, so not charged) */
    double codec_ms =
        cpu ? dl_compress_cpu_ms(spec, ranks, r->net.n_params, bucket_floats, mats, n_mats) : 0.0;
    free(mats);
    dl_step_inputs in = {.compute_ms = compute_ms * stretch + codec_ms,
                         .backward_frac = one->compute_ms > 0 ? one->backward_ms / one->compute_ms
                                                              : 2.0 / 3.0,
                         .grad_bytes = 4.0 * (double)r->net.n_params * wire,
                         .bucket_bytes = r->bucket_mb * 1048576.0 * wire,
                         .overlap = !r->o->no_overlap,
                         .gpus = ranks,
                         .gbps = gbps,
                         .alpha_us = alpha_us};
    dl_step_model m;
    if (dl_step_predict(&in, &m) != 0 || m.step_ms <= 0)
        return 0;
    return ranks * compute_ms / m.step_ms;
}
