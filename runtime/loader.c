/* loader.c: the prefetching batch loader. */
#include "loader.h"

#include <stdlib.h>
#include <string.h>

static size_t global_batch(const dl_loader *ld) { return (size_t)ld->batch * ld->world; }

long dl_loader_steps_per_epoch(const dl_loader *ld)
{
    return (long)(ld->ds->n / global_batch(ld));
}

static void shuffle(dl_loader *ld)
{
    size_t n = ld->ds->n;
    for (size_t i = 0; i < n; i++)
        ld->perm[i] = i;
    dl_rng rng;
    dl_rng_seed(&rng, ld->seed, 0x5f, (uint64_t)ld->epoch);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)dl_rng_below(&rng, i + 1), t = ld->perm[i];
        ld->perm[i] = ld->perm[j];
        ld->perm[j] = t;
    }
}

static void produce(dl_loader *ld, long j, dl_batch *b)
{
    const dl_dataset *ds = ld->ds;
    size_t per = (size_t)ds->c * ds->h * ds->w, first;
    if (ld->training) {
        size_t pos = ld->start_pos + (size_t)j * global_batch(ld);
        first = pos + (size_t)ld->rank * ld->batch;
        b->n = ld->batch;
        b->end_pos = pos + global_batch(ld);
    } else {
        first = ld->shard_lo + (size_t)j * ld->batch;
        b->n = (int)DL_MIN((size_t)ld->batch, ld->shard_hi - first);
        b->end_pos = first + (size_t)b->n;
    }
    for (int k = 0; k < b->n; k++) {
        size_t idx = ld->training ? ld->perm[first + k] : first + k;
        dl_rng rng;
        /* per (epoch, sample): identical whether or not the run was resumed */
        dl_rng_seed(&rng, ld->seed ^ 0xa06, (uint64_t)ld->epoch, idx);
        dl_dataset_sample(ds, idx, b->images + (size_t)k * per, &b->labels[k], ld->augment, &rng);
    }
}

static void *loader_main(void *arg)
{
    dl_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        /* slot j%2 is free once the consumer has moved past batch j-2 */
        while (!ld->stop && !(ld->ready < ld->total && ld->ready <= ld->taken))
            pthread_cond_wait(&ld->cv, &ld->mu);
        if (ld->stop)
            break;
        long j = ld->ready, gen = ld->generation;
        dl_tracer *tr = ld->trace; /* read under the lock: set before the first epoch */
        ld->busy = 1;
        pthread_mutex_unlock(&ld->mu);
        dl_trace_begin_args(tr, ld->trace_track, "data", ld->training ? "load batch" : "load eval batch",
                            "\"epoch\":%d,\"batch\":%ld", ld->epoch, j);
        produce(ld, j, &ld->slots[j % 2]);
        dl_trace_end(tr, ld->trace_track);
        pthread_mutex_lock(&ld->mu);
        ld->busy = 0;
        if (gen == ld->generation)
            ld->ready = j + 1;
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

dl_status dl_loader_init(dl_loader *ld, const dl_dataset *ds, int batch, int rank, int world,
                         uint64_t seed, int training, int augment)
{
    memset(ld, 0, sizeof *ld);
    ld->ds = ds, ld->batch = batch, ld->rank = rank, ld->world = world;
    ld->seed = seed, ld->training = training, ld->augment = augment && training;
    if (batch < 1 || world < 1)
        return dl_fail(DL_ERR_ARG, "batch and world size must be positive");
    if (training && ds->n < global_batch(ld))
        return dl_fail(DL_ERR_ARG, "%zu training samples are fewer than one global batch (%d ranks x %d)",
                       ds->n, world, batch);
    size_t per = (size_t)ds->c * ds->h * ds->w;
    for (int s = 0; s < 2; s++) {
        ld->slots[s].images = dl_alloc(sizeof(float) * per * batch, "batch images");
        ld->slots[s].labels = dl_alloc(sizeof(int32_t) * batch, "batch labels");
        if (!ld->slots[s].images || !ld->slots[s].labels)
            return DL_ERR_OOM;
    }
    if (training && !(ld->perm = dl_alloc(sizeof(size_t) * ds->n, "permutation")))
        return DL_ERR_OOM;
    ld->shard_lo = ds->n * (size_t)rank / (size_t)world;
    ld->shard_hi = ds->n * (size_t)(rank + 1) / (size_t)world;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    if (pthread_create(&ld->thread, NULL, loader_main, ld) != 0)
        return dl_fail(DL_ERR_IO, "cannot start the data loader thread");
    ld->thread_started = 1;
    return DL_OK;
}

void dl_loader_start_epoch(dl_loader *ld, int epoch, size_t start_pos)
{
    pthread_mutex_lock(&ld->mu);
    while (ld->busy) /* the producer reads perm; let it finish its batch */
        pthread_cond_wait(&ld->cv, &ld->mu);
    ld->generation++;
    ld->epoch = epoch;
    if (ld->training) {
        shuffle(ld);
        size_t g = global_batch(ld), full = ld->ds->n / g * g;
        ld->start_pos = start_pos < full ? start_pos : full;
        ld->total = (long)((full - ld->start_pos) / g);
    } else {
        size_t span = ld->shard_hi - ld->shard_lo;
        ld->total = (long)((span + (size_t)ld->batch - 1) / (size_t)ld->batch);
    }
    ld->ready = ld->taken = 0;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
}

int dl_loader_has_next(const dl_loader *ld)
{
    return ld->taken < ld->total; /* both written by the training thread only */
}

const dl_batch *dl_loader_next(dl_loader *ld)
{
    pthread_mutex_lock(&ld->mu);
    if (ld->taken >= ld->total) {
        pthread_mutex_unlock(&ld->mu);
        return NULL;
    }
    long j = ld->taken++; /* releases batch j-1's slot to the producer */
    pthread_cond_broadcast(&ld->cv);
    while (ld->ready <= j)
        pthread_cond_wait(&ld->cv, &ld->mu);
    pthread_mutex_unlock(&ld->mu);
    return &ld->slots[j % 2];
}

void dl_loader_free(dl_loader *ld)
{
    if (ld->thread_started) {
        pthread_mutex_lock(&ld->mu);
        ld->stop = 1;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
        pthread_join(ld->thread, NULL);
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->cv);
    }
    for (int s = 0; s < 2; s++) {
        free(ld->slots[s].images);
        free(ld->slots[s].labels);
    }
    free(ld->perm);
    memset(ld, 0, sizeof *ld);
}
