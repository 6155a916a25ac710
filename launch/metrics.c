/* metrics.c: progress line, epoch summary and JSON lines. */
#include "metrics.h"

#include "../runtime/common.h"

#include <string.h>

int dl_metrics_open(dl_metrics *m, const char *json_path, int live)
{
    memset(m, 0, sizeof *m);
    m->live = live;
    if (json_path && json_path[0]) {
        m->json = fopen(json_path, "w");
        if (!m->json)
            return -1;
    }
    return 0;
}

void dl_metrics_close(dl_metrics *m)
{
    if (m->json)
        fclose(m->json);
    m->json = NULL;
}

static void format_eta(double s, char *buf, size_t cap)
{
    long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
}

void dl_metrics_progress(dl_metrics *m, int epoch, long step, long steps, double loss,
                         double images_per_s, double eta_s)
{
    double now = dl_now();
    if (!m->live || (now - m->last_draw < 0.25 && step != steps))
        return;
    m->last_draw = now;
    char eta[32];
    format_eta(eta_s, eta, sizeof eta);
    fprintf(stderr, "\r  epoch %d  step %ld/%ld  loss %.4f  %.0f img/s  ETA %s   ", epoch + 1, step,
            steps, loss, images_per_s, eta);
    if (step == steps)
        fputs("\r\033[K", stderr);
    fflush(stderr);
}

void dl_metrics_json_line(dl_metrics *m, const char *body)
{
    if (!m->json)
        return;
    fprintf(m->json, "{%s}\n", body);
    fflush(m->json);
}

void dl_metrics_step_json(dl_metrics *m, int epoch, long step, double loss, double lr)
{
    char body[256];
    /* %.9g round-trips a float exactly: resume tests compare these bit for bit */
    snprintf(body, sizeof body, "\"type\":\"step\",\"epoch\":%d,\"step\":%ld,\"loss\":%.9g,\"lr\":%.9g",
             epoch + 1, step, loss, lr);
    dl_metrics_json_line(m, body);
}

void dl_metrics_epoch(dl_metrics *m, const dl_epoch_summary *e)
{
    const dl_phase_times *t = &e->t;
    double steps = e->steps > 0 ? (double)e->steps : 1.0;
    printf("epoch %d/%d  train loss %.4f  test loss %.4f  test acc %.2f%%  %.1fs  %.0f img/s\n",
           e->epoch + 1, e->epochs, e->train_loss, e->test_loss, 100.0 * e->test_acc, e->seconds,
           e->images_per_s);
    printf("  per step (ms): data %.2f  forward %.2f  backward %.2f  comm %.2f  "
           "exposed comm %.2f  optimizer %.2f\n",
           1e3 * t->data / steps, 1e3 * t->forward / steps, 1e3 * t->backward / steps,
           1e3 * t->comm / steps, 1e3 * t->exposed_comm / steps, 1e3 * t->optimizer / steps);
    fflush(stdout);
    char body[768];
    snprintf(body, sizeof body,
             "\"type\":\"epoch\",\"epoch\":%d,\"steps\":%ld,\"train_loss\":%.9g,"
             "\"test_loss\":%.9g,\"test_acc\":%.6f,\"lr\":%.9g,\"time_s\":%.3f,"
             "\"images_per_s\":%.1f,\"step_ms\":{\"data\":%.4f,\"forward\":%.4f,"
             "\"backward\":%.4f,\"comm\":%.4f,\"exposed_comm\":%.4f,\"optimizer\":%.4f}",
             e->epoch + 1, e->steps, e->train_loss, e->test_loss, e->test_acc, e->lr, e->seconds,
             e->images_per_s, 1e3 * t->data / steps, 1e3 * t->forward / steps,
             1e3 * t->backward / steps, 1e3 * t->comm / steps, 1e3 * t->exposed_comm / steps,
             1e3 * t->optimizer / steps);
    dl_metrics_json_line(m, body);
}
