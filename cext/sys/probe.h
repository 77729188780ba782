/* Deadline-bounded probes in C: a pool of long-lived pthreads runs the
 * syscalls that may block forever on a dead network filesystem (statx,
 * statfs, umount2), and the caller waits on a condition variable with a
 * deadline.
 *
 * Handing a probe to a Python thread costs two GIL handoffs (about 20-30 us);
 * here the caller (which cffi has released the GIL for) and the worker meet on
 * one mutex and two condition variables.  A worker that does not answer in
 * time is abandoned: it owns its job from then on, frees it when (if ever)
 * the syscall returns, and rejoins the pool.  A probe that finds no idle
 * worker starts one, so stuck workers never drain the pool; a worker idle for
 * MK_PROBE_IDLE_SECONDS exits.  A forked child starts with an empty pool.
 *
 * The mount-root question needs no worker at all when the dentry cache holds
 * the whole path (mk_is_mount_root_cached, sys.h): then it is answered on the
 * caller's thread, since nothing on that path can wait on a server.
 *
 * Concurrent probes of one path share one job (single flight): a caller that
 * asks while a job of the same op, flags and path is in flight waits for its
 * answer instead of handing over one of its own, so a burst of publishes of
 * one staged share costs one hand-off, not one each.  Every caller keeps its
 * own deadline.  An answer is never reused: a job leaves the in-flight table
 * when it finishes, so a caller after the answer starts a fresh probe.  A job
 * that kept any caller past its deadline is presumed hung and leaves the
 * table too: its other callers wait on to their own deadlines, and later ones
 * start a new probe (one new stuck worker per deadline at most, not one per
 * caller), so a path mounted afresh over a dead, detached share is answered
 * by its new mount.  Unmounts are never shared.
 */
#ifndef MOUNTKIT_PROBE_H
#define MOUNTKIT_PROBE_H

enum mk_probe_op {
    /* statx of path: 1 a mount root, 0 not, -2 the kernel cannot tell */
    MK_PROBE_MOUNT_ROOT = 1,
    /* statfs of path: 0 */
    MK_PROBE_STATFS = 2,
    /* MK_PROBE_MOUNT_ROOT, then (only for a mount root) statfs of it */
    MK_PROBE_LIVE_ROOT = 3,
    /* mk_unmount(path, flags) (sys.h): 0 once nothing is mounted there */
    MK_PROBE_UNMOUNT = 4,
    /* mk_probe_cleanup_beneath's job */
    MK_PROBE_CLEANUP_BENEATH = 5
};

/* Which syscall a failed probe failed in (*failed_op). */
enum mk_probe_failed {
    MK_PROBE_FAILED_STATX = 1,
    MK_PROBE_FAILED_STATFS = 2,
    MK_PROBE_FAILED_UNMOUNT = 3,
    MK_PROBE_FAILED_OPEN = 4,
    MK_PROBE_FAILED_RMDIR = 5
};

/* Run op on path (flags: the statx's at_flags, or umount2's flags for
 * MK_PROBE_UNMOUNT) on a pool worker, waiting at most
 * timeout_ms; the mount-root part runs on the caller's thread where
 * mk_is_mount_root_cached can answer it.  Returns the op's result (>= -2), or -1 with *err set and
 * *failed_op naming the syscall, or -3 when the deadline passed (the worker
 * is abandoned), or -4 (*err set) when no worker could be started. */
int mk_probe(int op, const char *path, int flags, long timeout_ms,
             int *err, int *failed_op);

/* An unpublish's whole cleanup as one job, deadline-bounded like mk_probe
 * (never shared): the parent directory opened beneath root (mk_open_beneath
 * with open_flags and resolve), mk_unmount of the name in it through /proc/self/fd/N/name with
 * flags (umount2's: the parent is pinned, so a parent swapped for a symlink
 * cannot redirect the unmount), then unlinkat(parent, name, AT_REMOVEDIR).  A
 * name already gone is done.  Returns 0; or -1 with *err and *failed_op
 * (MK_PROBE_FAILED_OPEN: the root or the parent could not be opened; _UNMOUNT;
 * _RMDIR: unmounted, but not removed), -3 or -4 as mk_probe. */
int mk_probe_cleanup_beneath(const char *root, const char *parent,
                             const char *name, int flags,
                             unsigned long long open_flags,
                             unsigned long long resolve, long timeout_ms,
                             int *err, int *failed_op);

/* Jobs abandoned (every caller gone unanswered) since the process started,
 * and those still blocked. */
long mk_probe_abandoned(void);
long mk_probe_hung(void);
/* Worker threads alive now (idle, busy or stuck). */
long mk_probe_workers(void);
/* Jobs handed to the pool since the process started, and the callers that
 * joined one in flight instead. */
long mk_probe_started(void);
long mk_probe_joined(void);

#endif
