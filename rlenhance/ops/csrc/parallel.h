/* How every kernel runs its bands of rows on threads (included by each kernel's .c file). */
#ifndef RLENHANCE_PARALLEL_H
#define RLENHANCE_PARALLEL_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* Run fn on each of the n jobs (job_size bytes each, one after the other from jobs): the first on
   this thread, the others on threads of their own, each run here instead when its thread cannot be
   started. Returns 0, or -1 (nothing run) when the thread table cannot be allocated. */
static int run_jobs(void *(*fn)(void *), void *jobs, size_t job_size, int64_t n) {
    pthread_t *threads = calloc((size_t)n, sizeof(pthread_t));
    char *started = calloc((size_t)n, 1);
    char *job = (char *)jobs;
    if (!threads || !started) {
        free(threads);
        free(started);
        return -1;
    }
    for (int64_t i = 1; i < n; i++) started[i] = pthread_create(&threads[i], NULL, fn, job + (size_t)i * job_size) == 0;
    fn(job);
    for (int64_t i = 1; i < n; i++) {
        if (started[i]) pthread_join(threads[i], NULL);
        else fn(job + (size_t)i * job_size);  /* no thread could be started: run it here */
    }
    free(threads);
    free(started);
    return 0;
}

#endif
