/* workers.c — start, watch and join a pool of worker threads (workers.h).
 *
 * DESIGN: `lock` guards `running`, the number of workers not yet returned; each worker
 * decrements it and signals `cv` on return, which wakes the watching thread early. */
#include "data/workers.h"

#include <pthread.h>
#include <time.h>

typedef struct {
    void (*work)(void *);
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    int running;
} Pool;

static void *trampoline(void *p)
{
    Pool *pool = p;
    pool->work(pool->arg);
    pthread_mutex_lock(&pool->lock);
    pool->running--;
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

void data_run_workers(int threads, void (*work)(void *arg), void (*watch)(void *arg),
                      void *arg)
{
    Pool pool = {.work = work, .arg = arg};
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.cv, NULL);
    pthread_t tid[64];
    int started = 0;
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    pthread_mutex_lock(&pool.lock);
    for (int t = 0; t < threads; t++) {
        if (pthread_create(&tid[started], NULL, trampoline, &pool) != 0)
            break;
        started++;
        pool.running++;
    }
    pthread_mutex_unlock(&pool.lock);
    if (started == 0) {
        work(arg);
    } else {
        pthread_mutex_lock(&pool.lock);
        while (pool.running > 0) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 100 * 1000 * 1000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&pool.cv, &pool.lock, &until);
            if (pool.running > 0 && watch) {
                pthread_mutex_unlock(&pool.lock);
                watch(arg);
                pthread_mutex_lock(&pool.lock);
            }
        }
        pthread_mutex_unlock(&pool.lock);
        for (int t = 0; t < started; t++)
            pthread_join(tid[t], NULL);
    }
    if (watch)
        watch(arg);
    pthread_cond_destroy(&pool.cv);
    pthread_mutex_destroy(&pool.lock);
}
