/* workers.h — a pool of identical worker threads watched from the calling thread, for the
 * data module's batch jobs (cache build, scan checks, demo writer). */
#ifndef INITLAB_DATA_WORKERS_H
#define INITLAB_DATA_WORKERS_H

/* Runs work(arg) on `threads` new threads (1..64) and waits for all of them. While they
 * run, calls watch(arg) from the calling thread about every 100 ms and once right after
 * the last one finishes (watch may be NULL); the workers and watch share arg, so they
 * must synchronize through it (atomics). When no thread can start, work(arg) runs on the
 * calling thread instead. Can't fail. */
void data_run_workers(int threads, void (*work)(void *arg), void (*watch)(void *arg),
                      void *arg);

#endif
