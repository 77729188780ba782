/* See probe.h.  One mutex guards the queue, the in-flight table, the
 * counters and every job's fields but its answer; workers wait on `work`, a
 * job's callers on its `done`.  A job is freed by whoever leaves it last: the
 * last waiter once it has finished, or its worker once every waiter has gone. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"
#include "sys.h"

#define MK_PROBE_IDLE_SECONDS 30
#define MK_PROBE_STACK (256 * 1024)
#define MK_PROBE_BUCKETS 64 /* of the in-flight table; a power of two */

struct job {
    struct job *next;    /* in the queue */
    struct job *sibling; /* in its in-flight bucket, while it is shared */
    unsigned hash;
    int op, flags;
    unsigned long long open_flags, resolve; /* MK_PROBE_CLEANUP_BENEATH's openat2 */
    int result, err, failed_op;
    int finished, shared;
    long waiters; /* callers waiting for the answer; none left and not finished: abandoned */
    pthread_cond_t done;
    char path[]; /* MK_PROBE_CLEANUP_BENEATH: root, parent and name, each NUL-terminated */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_condattr_t monotonic;
static pthread_cond_t work;
static struct job *head, *tail;
static struct job *inflight[MK_PROBE_BUCKETS]; /* shared jobs not yet answered, by hash */
static long queued, waiting, workers, abandoned_total, still_hung, started_total, joined_total;

static void reset(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    lock = fresh; /* the parent's workers do not exist here: forget them and their jobs */
    pthread_cond_init(&work, &monotonic);
    head = tail = NULL;
    memset(inflight, 0, sizeof inflight);
    queued = waiting = workers = still_hung = 0;
}

static void init(void)
{
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&work, &monotonic);
    pthread_atfork(NULL, NULL, reset);
}

static void deadline_in(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* FNV-1a of op, flags and path: the key a probe is shared by. */
static unsigned key_hash(int op, int flags, const char *path)
{
    unsigned h = 2166136261u;
    h = (h ^ (unsigned)op) * 16777619u;
    h = (h ^ (unsigned)flags) * 16777619u;
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        h = (h ^ *c) * 16777619u;
    return h;
}

/* With the lock held: the shared job asking op with flags of path, if one is in flight. */
static struct job *in_flight(unsigned hash, int op, int flags, const char *path)
{
    for (struct job *j = inflight[hash & (MK_PROBE_BUCKETS - 1)]; j; j = j->sibling)
        if (j->hash == hash && j->op == op && j->flags == flags && strcmp(j->path, path) == 0)
            return j;
    return NULL;
}

/* With the lock held: later callers no longer join j (answered, or presumed hung). */
static void stop_sharing(struct job *j)
{
    if (!j->shared)
        return;
    struct job **at = &inflight[j->hash & (MK_PROBE_BUCKETS - 1)];
    while (*at != j)
        at = &(*at)->sibling;
    *at = j->sibling;
    j->shared = 0;
}

static void release(struct job *j)
{
    pthread_cond_destroy(&j->done);
    free(j);
}

static void fail(struct job *j, int failed_op)
{
    j->result = -1;
    j->err = errno;
    j->failed_op = failed_op;
}

static void cleanup_beneath(struct job *j)
{
    const char *root = j->path;
    const char *parent = root + strlen(root) + 1;
    const char *name = parent + strlen(parent) + 1;
    struct mk_open_how how = {.flags = j->open_flags, .resolve = j->resolve};
    int which;
    int pfd = mk_open_beneath(root, parent, &how, sizeof how, &which);
    if (pfd < 0) {
        fail(j, MK_PROBE_FAILED_OPEN);
        return;
    }
    char target[32 + NAME_MAX + 1];
    if (strlen(name) > NAME_MAX) {
        errno = ENAMETOOLONG;
        fail(j, MK_PROBE_FAILED_UNMOUNT);
    } else {
        snprintf(target, sizeof target, "/proc/self/fd/%d/%s", pfd, name);
        if (mk_unmount(target, j->flags) != 0)
            fail(j, MK_PROBE_FAILED_UNMOUNT);
        else if (unlinkat(pfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
            fail(j, MK_PROBE_FAILED_RMDIR);
    }
    int saved = errno;
    close(pfd);
    errno = saved;
}

static void run(struct job *j)
{
    j->result = 0;
    if (j->op == MK_PROBE_CLEANUP_BENEATH) {
        cleanup_beneath(j);
        return;
    }
    if (j->op == MK_PROBE_UNMOUNT) {
        if (mk_unmount(j->path, j->flags) != 0) {
            j->result = -1;
            j->err = errno;
            j->failed_op = MK_PROBE_FAILED_UNMOUNT;
        }
        return;
    }
    if (j->op == MK_PROBE_MOUNT_ROOT || j->op == MK_PROBE_LIVE_ROOT) {
        j->result = mk_is_mount_root(-100 /* AT_FDCWD */, j->path, j->flags);
        if (j->result == -1) {
            j->err = errno;
            j->failed_op = MK_PROBE_FAILED_STATX;
            return;
        }
        if (j->op == MK_PROBE_MOUNT_ROOT || j->result != 1)
            return;
    }
    struct statfs st;
    if (statfs(j->path, &st) != 0) {
        j->result = -1;
        j->err = errno;
        j->failed_op = MK_PROBE_FAILED_STATFS;
    }
}

static void *worker(void *unused)
{
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!head) {
            struct timespec t;
            deadline_in(&t, MK_PROBE_IDLE_SECONDS * 1000L);
            waiting++;
            int rc = pthread_cond_timedwait(&work, &lock, &t);
            waiting--;
            if (rc == ETIMEDOUT && !head) {
                workers--;
                pthread_mutex_unlock(&lock);
                return NULL;
            }
        }
        struct job *j = head;
        head = j->next;
        if (!head)
            tail = NULL;
        queued--;
        pthread_mutex_unlock(&lock);
        run(j);
        pthread_mutex_lock(&lock);
        j->finished = 1;
        stop_sharing(j); /* an answer is never reused: a later caller asks afresh */
        if (j->waiters == 0) { /* abandoned: the job is ours to free */
            still_hung--;
            release(j);
        } else {
            pthread_cond_broadcast(&j->done);
        }
    }
}

/* Called with the lock held: a worker for every queued job nobody waits to take. */
static int staff(void)
{
    if (waiting >= queued) {
        pthread_cond_signal(&work);
        return 0;
    }
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, MK_PROBE_STACK);
    int rc = pthread_create(&thread, &attr, worker, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        workers++;
    return rc;
}

static int submit(int op, const char *data, size_t len, int flags,
                  unsigned long long open_flags, unsigned long long resolve,
                  int known_root, long timeout_ms, int *err, int *failed_op);

int mk_probe(int op, const char *path, int flags, long timeout_ms,
             int *err, int *failed_op)
{
    int known_root = 0;
    if (op == MK_PROBE_MOUNT_ROOT || op == MK_PROBE_LIVE_ROOT) {
        int root = mk_is_mount_root_cached(path, flags); /* no hand-off when the cache answers */
        if (root == -1) {
            *err = errno;
            *failed_op = MK_PROBE_FAILED_STATX;
            return -1;
        }
        if (root != -3 && (op == MK_PROBE_MOUNT_ROOT || root != 1))
            return root;
        if (root == 1) { /* a live-root probe still needs the statfs, which asks the server */
            op = MK_PROBE_STATFS;
            known_root = 1;
        }
    }
    return submit(op, path, strlen(path) + 1, flags, 0, 0, known_root, timeout_ms, err, failed_op);
}

int mk_probe_cleanup_beneath(const char *root, const char *parent,
                             const char *name, int flags,
                             unsigned long long open_flags,
                             unsigned long long resolve, long timeout_ms,
                             int *err, int *failed_op)
{
    size_t lr = strlen(root) + 1, lp = strlen(parent) + 1, ln = strlen(name) + 1;
    char *data = malloc(lr + lp + ln);
    if (!data) {
        *err = ENOMEM;
        return -4;
    }
    memcpy(data, root, lr);
    memcpy(data + lr, parent, lp);
    memcpy(data + lr + lp, name, ln);
    int rc = submit(MK_PROBE_CLEANUP_BENEATH, data, lr + lp + ln, flags, open_flags, resolve, 0,
                    timeout_ms, err, failed_op);
    free(data);
    return rc;
}

/* Queue (or, when it may be shared, join) the job asking op of the len bytes
 * at data, and wait for it until timeout_ms: mk_probe's returns. */
static int submit(int op, const char *data, size_t len, int flags,
                  unsigned long long open_flags, unsigned long long resolve,
                  int known_root, long timeout_ms, int *err, int *failed_op)
{
    const char *path = data;
    pthread_once(&once, init);
    struct timespec t;
    deadline_in(&t, timeout_ms);
    /* an unmount has effects: each is its own */
    int shareable = op != MK_PROBE_UNMOUNT && op != MK_PROBE_CLEANUP_BENEATH;
    unsigned hash = shareable ? key_hash(op, flags, path) : 0;

    pthread_mutex_lock(&lock);
    struct job *j = shareable ? in_flight(hash, op, flags, path) : NULL;
    if (j) {
        j->waiters++;
        joined_total++;
    } else {
        j = calloc(1, sizeof *j + len);
        if (!j) {
            pthread_mutex_unlock(&lock);
            *err = ENOMEM;
            return -4;
        }
        memcpy(j->path, data, len);
        j->op = op;
        j->flags = flags;
        j->open_flags = open_flags;
        j->resolve = resolve;
        j->hash = hash;
        j->waiters = 1;
        pthread_cond_init(&j->done, &monotonic);
        if (shareable) {
            struct job **bucket = &inflight[hash & (MK_PROBE_BUCKETS - 1)];
            j->sibling = *bucket;
            *bucket = j;
            j->shared = 1;
        }
        if (tail)
            tail->next = j;
        else
            head = j;
        tail = j;
        queued++;
        started_total++;
        int rc = staff();
        if (rc != 0 && workers == 0) { /* nobody will ever take it (nobody has joined it yet) */
            stop_sharing(j);
            head = tail = NULL;
            queued = 0;
            pthread_mutex_unlock(&lock);
            release(j);
            *err = rc;
            return -4;
        }
    }
    while (!j->finished)
        if (pthread_cond_timedwait(&j->done, &lock, &t) == ETIMEDOUT && !j->finished)
            break;
    if (!j->finished) {
        stop_sharing(j); /* presumed hung: later callers start a probe of their own */
        if (--j->waiters == 0) { /* the last caller has gone: the worker frees it */
            abandoned_total++;
            still_hung++;
        }
        pthread_mutex_unlock(&lock);
        return -3;
    }
    int result = (known_root && j->result == 0) ? 1 : j->result;
    *err = j->err;
    *failed_op = j->failed_op;
    int last = --j->waiters == 0;
    pthread_mutex_unlock(&lock);
    if (last)
        release(j);
    return result;
}

static long read_locked(const long *counter)
{
    pthread_mutex_lock(&lock);
    long value = *counter;
    pthread_mutex_unlock(&lock);
    return value;
}

long mk_probe_abandoned(void)
{
    return read_locked(&abandoned_total);
}

long mk_probe_hung(void)
{
    return read_locked(&still_hung);
}

long mk_probe_workers(void)
{
    return read_locked(&workers);
}

long mk_probe_started(void)
{
    return read_locked(&started_total);
}

long mk_probe_joined(void)
{
    return read_locked(&joined_total);
}
