/* fuzz_checkpoint.c: the checkpoint loader (runtime/checkpoint.c) on forged
 * files.
 *
 * Input: a flags byte, then the file.  With bit 0 set the harness recomputes
 * both CRC-32s first (dl_checkpoint_reseal), so the fuzzer reaches every
 * check behind the checksums, as a forger would.  The network is tiny (conv,
 * batch norm, pooling, fc: 33 parameters in 148 floats, as each layer
 * starts on 64; 4 buffers) so whole files stay small.  A load
 * that succeeds must have put only finite values in the network, zeros in
 * the padding between layers, and progress that satisfies the documented
 * limits.
 *
 * Built with -DFUZZ_SEED_MAIN it is instead a program that writes a valid
 * seed (flags byte 1 + a real checkpoint) to the path it is given. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "device.h"
#include "fuzz_common.h"

#define TINY_TRAIN_SAMPLES 50

static dl_net net;
static float *velocity;

static void build_tiny_net(void)
{
    if (dl_net_init(&net, 1, 4, 4, 3) != DL_OK)
        abort();
    int x = dl_net_conv(&net, net.input, 2, 3, 1, 1, 1);
    x = dl_net_bn_relu(&net, x);
    dl_net_fc(&net, dl_net_gap(&net, x), net.classes, 1);
    if (dl_net_finalize(&net, dl_device_cpu(1), 2, 1) != DL_OK)
        abort();
    velocity = calloc(net.n_params, sizeof(float));
    if (!velocity)
        abort();
}

#ifndef FUZZ_SEED_MAIN
static void check_loaded(const dl_progress *p)
{
    size_t n = 2 * net.n_params + net.n_buffers;
    float *host = malloc(sizeof(float) * n);
    if (!host)
        abort();
    memcpy(host, net.params, sizeof(float) * net.n_params);
    memcpy(host + net.n_params, velocity, sizeof(float) * net.n_params);
    memcpy(host + 2 * net.n_params, net.buffers, sizeof(float) * net.n_buffers);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(host[i]))
            abort(); /* the loader let a NaN or Inf through */
    if (dl_net_padding_nonzero(&net, host) >= 0 ||
        dl_net_padding_nonzero(&net, host + net.n_params) >= 0)
        abort(); /* the loader let a value into the padding between layers */
    free(host);
    if (p->epoch < 0 || p->epoch > DL_CKPT_MAX_EPOCH || p->step > p->samples_seen ||
        p->epoch_pos > p->samples_seen || p->epoch_pos > TINY_TRAIN_SAMPLES)
        abort(); /* progress the training loop cannot take */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!net.n_params)
        build_tiny_net();
    if (size < 1)
        return 0;
    unsigned char *file = malloc(size);
    if (!file)
        return 0;
    memcpy(file, data + 1, size - 1);
    if (data[0] & 1)
        dl_checkpoint_reseal(file, size - 1);
    const char *path = fuzz_write_file("ckpt.bin", file, size - 1, 0, 0);
    free(file);
    dl_progress p;
    if (path && dl_checkpoint_load(path, "tiny", &net, velocity, &p) == DL_OK &&
        dl_checkpoint_check_position(path, &p, TINY_TRAIN_SAMPLES) == DL_OK)
        check_loaded(&p);
    return 0;
}
#else
int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SEED_FILE\n", argv[0]);
        return 2;
    }
    build_tiny_net();
    dl_progress p = {.epoch = 1, .epoch_pos = 16, .samples_seen = 66, .step = 5, .seed = 1};
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.ckpt", argv[1]);
    if (dl_checkpoint_save(tmp, "tiny", &net, velocity, &p) != DL_OK) {
        fprintf(stderr, "%s\n", dl_error_message());
        return 1;
    }
    dl_progress back;
    if (dl_checkpoint_load(tmp, "tiny", &net, velocity, &back) != DL_OK ||
        memcmp(&back, &p, sizeof p) != 0) {
        fprintf(stderr, "the seed does not load back: %s\n", dl_error_message());
        return 1;
    }
    FILE *in = fopen(tmp, "rb"), *out = fopen(argv[1], "wb");
    if (!in || !out)
        return 1;
    fputc(1, out);
    int ch;
    while ((ch = fgetc(in)) != EOF)
        fputc(ch, out);
    fclose(in);
    remove(tmp);
    return fclose(out) == 0 ? 0 : 1;
}
#endif
