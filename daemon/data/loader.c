/* loader.c — the ring of batch buffers and its producer threads (loader.h).
 *
 * DESIGN: `ring` slots, batch b of an epoch always goes to slot b % ring. A slot is FREE
 * (nobody's), FILLING (owned by the one producer that claimed it), READY (produced, waiting
 * for the consumer) or HELD (handed out by data_loader_next, owned by the consumer until
 * its next call). Producers claim batches in order; batch b can be claimed only when its
 * slot is FREE, i.e. after the consumer released batch b − ring. `lock` guards every
 * field of DataLoader except the slots' pixel/label contents, which belong to the slot's
 * current owner, and except order/flips, which are written only while no epoch runs and
 * no slot is FILLING (start holds the lock; producers read them after taking the lock to
 * claim, so the writes happen-before the reads). Condition variables: `work` wakes
 * producers (epoch started, slot freed, shutdown), `ready` wakes the consumer (slot
 * READY), `idle` wakes stop() when the last FILLING slot is done. */
#include "data/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/rng.h"

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct {
    float *images;   /* (batch_size, S, S, 3) */
    int *labels;     /* (batch_size) */
    int *indices;    /* (batch_size) */
    int n, number, state;
} Slot;

struct DataLoader {
    DataLoaderConfig cfg;
    int image_floats;          /* S·S·3 */
    Slot *slots;               /* [ring] */
    pthread_t *tids;
    int n_threads;

    pthread_mutex_t lock;
    pthread_cond_t work, ready, idle;
    int *order;                /* [cap] epoch order of index positions */
    uint8_t *flips;            /* [cap] */
    int cap, n, n_batches;
    int next_claim, next_consume, held, filling;
    bool active, shutdown;
    double wait_s;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void fill(DataLoader *ld, Slot *s, int b)
{
    int B = ld->cfg.batch_size;
    int first = b * B;
    int n = ld->n - first < B ? ld->n - first : B;
    for (int k = 0; k < n; k++)
        data_cache_prefetch(ld->cfg.cache, ld->order[first + k]);
    for (int k = 0; k < n; k++) {
        int idx = ld->order[first + k];
        data_pre_apply(ld->cfg.pre, data_cache_image(ld->cfg.cache, idx),
                       ld->flips[first + k], s->images + (size_t)k * ld->image_floats);
        s->labels[k] = data_cache_label(ld->cfg.cache, idx);
        s->indices[k] = idx;
    }
    s->n = n;
    s->number = b;
}

static void *producer(void *arg)
{
    DataLoader *ld = arg;
    pthread_mutex_lock(&ld->lock);
    while (!ld->shutdown) {
        Slot *s = NULL;
        int b = ld->next_claim;
        if (ld->active && b < ld->n_batches) {
            s = &ld->slots[b % ld->cfg.ring];
            if (s->state != SLOT_FREE)
                s = NULL;
        }
        if (!s) {
            pthread_cond_wait(&ld->work, &ld->lock);
            continue;
        }
        ld->next_claim++;
        s->state = SLOT_FILLING;
        ld->filling++;
        pthread_mutex_unlock(&ld->lock);
        fill(ld, s, b);
        pthread_mutex_lock(&ld->lock);
        s->state = SLOT_READY;
        if (--ld->filling == 0)
            pthread_cond_broadcast(&ld->idle);
        pthread_cond_broadcast(&ld->ready);
    }
    pthread_mutex_unlock(&ld->lock);
    return NULL;
}

DataLoader *data_loader_create(const DataLoaderConfig *cfg)
{
    if (!cfg->cache || !cfg->pre || cfg->batch_size < 1 ||
        cfg->pre->size != data_cache_size(cfg->cache))
        return NULL;
    DataLoader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return NULL;
    ld->cfg = *cfg;
    if (ld->cfg.threads <= 0)
        ld->cfg.threads = 2;
    if (ld->cfg.ring <= 0)
        ld->cfg.ring = ld->cfg.threads + 2;
    if (ld->cfg.ring < 2)
        ld->cfg.ring = 2;
    int S = data_cache_size(cfg->cache);
    ld->image_floats = S * S * 3;
    ld->held = -1;
    pthread_mutex_init(&ld->lock, NULL);
    pthread_cond_init(&ld->work, NULL);
    pthread_cond_init(&ld->ready, NULL);
    pthread_cond_init(&ld->idle, NULL);
    ld->slots = calloc((size_t)ld->cfg.ring, sizeof *ld->slots);
    ld->tids = calloc((size_t)ld->cfg.threads, sizeof *ld->tids);
    if (!ld->slots || !ld->tids)
        goto fail;
    for (int r = 0; r < ld->cfg.ring; r++) {
        Slot *s = &ld->slots[r];
        s->images = malloc((size_t)cfg->batch_size * ld->image_floats * sizeof(float));
        s->labels = malloc((size_t)cfg->batch_size * sizeof(int));
        s->indices = malloc((size_t)cfg->batch_size * sizeof(int));
        if (!s->images || !s->labels || !s->indices)
            goto fail;
    }
    for (int t = 0; t < ld->cfg.threads; t++) {
        if (pthread_create(&ld->tids[t], NULL, producer, ld) != 0)
            break;
        ld->n_threads++;
    }
    if (ld->n_threads == 0)
        goto fail;
    return ld;
fail:
    data_loader_free(ld);
    return NULL;
}

void data_loader_free(DataLoader *ld)
{
    if (!ld)
        return;
    pthread_mutex_lock(&ld->lock);
    ld->shutdown = true;
    ld->active = false;
    pthread_cond_broadcast(&ld->work);
    pthread_mutex_unlock(&ld->lock);
    for (int t = 0; t < ld->n_threads; t++)
        pthread_join(ld->tids[t], NULL);
    for (int r = 0; ld->slots && r < ld->cfg.ring; r++) {
        free(ld->slots[r].images);
        free(ld->slots[r].labels);
        free(ld->slots[r].indices);
    }
    pthread_mutex_destroy(&ld->lock);
    pthread_cond_destroy(&ld->work);
    pthread_cond_destroy(&ld->ready);
    pthread_cond_destroy(&ld->idle);
    free(ld->slots);
    free(ld->tids);
    free(ld->order);
    free(ld->flips);
    free(ld);
}

/* With the lock held: ends the epoch and waits until no slot is FILLING. */
static void stop_locked(DataLoader *ld)
{
    ld->active = false;
    while (ld->filling > 0)
        pthread_cond_wait(&ld->idle, &ld->lock);
    for (int r = 0; r < ld->cfg.ring; r++)
        ld->slots[r].state = SLOT_FREE;
    ld->held = -1;
    ld->next_claim = ld->next_consume = ld->n_batches = 0;
}

void data_loader_stop(DataLoader *ld)
{
    pthread_mutex_lock(&ld->lock);
    stop_locked(ld);
    pthread_mutex_unlock(&ld->lock);
}

int data_loader_start(DataLoader *ld, const int *indices, int n, uint64_t seed, bool shuffle)
{
    int rc = 0;
    pthread_mutex_lock(&ld->lock);
    stop_locked(ld);
    if (n > ld->cap) {
        int *o = realloc(ld->order, (size_t)n * sizeof *o);
        if (o)
            ld->order = o;
        uint8_t *f = o ? realloc(ld->flips, (size_t)n) : NULL;
        if (f)
            ld->flips = f;
        if (!o || !f) {
            rc = -1;
            goto out;
        }
        ld->cap = n;
    }
    ld->n = n;
    if (n > 0)
        memcpy(ld->order, indices, (size_t)n * sizeof *indices);
    Rng rng;
    if (shuffle) {
        rng_seed(&rng, rng_derive(seed, 0));
        rng_shuffle_int(&rng, ld->order, n);
    }
    rng_seed(&rng, rng_derive(seed, 1));
    for (int i = 0; i < n; i++)
        ld->flips[i] = ld->cfg.flip ? (uint8_t)(rng_u64(&rng) >> 63) : 0;
    int B = ld->cfg.batch_size;
    ld->n_batches = ld->cfg.drop_last ? n / B : (n + B - 1) / B;
    ld->wait_s = 0.0;
    ld->active = true;
    pthread_cond_broadcast(&ld->work);
out:
    pthread_mutex_unlock(&ld->lock);
    return rc;
}

int data_loader_next(DataLoader *ld, DataBatch *batch)
{
    int rc = 0;
    pthread_mutex_lock(&ld->lock);
    if (ld->held >= 0) {
        ld->slots[ld->held].state = SLOT_FREE;
        ld->held = -1;
        pthread_cond_broadcast(&ld->work);
    }
    if (ld->active && ld->next_consume < ld->n_batches) {
        int r = ld->next_consume % ld->cfg.ring;
        Slot *s = &ld->slots[r];
        if (s->state != SLOT_READY) {
            double t0 = now_s();
            while (s->state != SLOT_READY)
                pthread_cond_wait(&ld->ready, &ld->lock);
            ld->wait_s += now_s() - t0;
        }
        s->state = SLOT_HELD;
        ld->held = r;
        ld->next_consume++;
        batch->images = s->images;
        batch->labels = s->labels;
        batch->indices = s->indices;
        batch->n = s->n;
        batch->number = s->number;
        rc = 1;
    }
    pthread_mutex_unlock(&ld->lock);
    return rc;
}

double data_loader_wait_seconds(DataLoader *ld)
{
    pthread_mutex_lock(&ld->lock);
    double w = ld->wait_s;
    pthread_mutex_unlock(&ld->lock);
    return w;
}

int data_loader_batches(DataLoader *ld)
{
    pthread_mutex_lock(&ld->lock);
    int n = ld->n_batches;
    pthread_mutex_unlock(&ld->lock);
    return n;
}

void data_read_batch(const DataCache *cache, const DataPreprocess *pre, const int *indices,
                     int n, float *images, int *labels)
{
    size_t m = (size_t)pre->size * pre->size * 3;
    for (int k = 0; k < n; k++) {
        data_pre_apply(pre, data_cache_image(cache, indices[k]), false, images + k * m);
        if (labels)
            labels[k] = data_cache_label(cache, indices[k]);
    }
}
