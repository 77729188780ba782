/* Thin syscall wrappers: syscall(2) where glibc has no wrapper (or a newer
 * one than the build host's glibc).  No policy here; errno is left for the
 * Python side to turn into exceptions. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sys.h"

/* x86_64 numbers, also the "common" numbers in the unified syscall table used
 * by every architecture added since 5.1. */
#ifndef __NR_open_tree
#define __NR_open_tree 428
#endif
#ifndef __NR_move_mount
#define __NR_move_mount 429
#endif
#ifndef __NR_fsopen
#define __NR_fsopen 430
#endif
#ifndef __NR_fsconfig
#define __NR_fsconfig 431
#endif
#ifndef __NR_fsmount
#define __NR_fsmount 432
#endif
#ifndef __NR_fspick
#define __NR_fspick 433
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_statmount
#define __NR_statmount 457
#endif
#ifndef __NR_listmount
#define __NR_listmount 458
#endif

#define MK_STATX_ATTR_MOUNT_ROOT 0x00002000ULL
#define MK_STATX_INO 0x100U
#define MK_STATX_MNT_ID_UNIQUE 0x4000U
#define MK_RESOLVE_CACHED 0x20ULL
#define MK_AT_EMPTY_PATH 0x1000
#define MK_AT_SYMLINK_NOFOLLOW 0x100
#define MK_AT_STATX_DONT_SYNC 0x4000

int mk_mount(const char *source, const char *target, const char *fstype,
             unsigned long flags, const void *data)
{
    return mount(source, target, fstype, flags, data);
}

int mk_umount2(const char *target, int flags)
{
    return umount2(target, flags);
}

int mk_unmount(const char *target, int flags)
{
    while (umount2(target, flags) == 0)
        ;
    return (errno == EINVAL || errno == ENOENT || errno == ENOTDIR) ? 0 : -1;
}

int mk_open_tree(int dfd, const char *path, unsigned int flags)
{
    return (int)syscall(__NR_open_tree, dfd, path, flags);
}

int mk_move_mount(int from_dfd, const char *from_path, int to_dfd,
                  const char *to_path, unsigned int flags)
{
    return (int)syscall(__NR_move_mount, from_dfd, from_path, to_dfd, to_path,
                        flags);
}

int mk_mount_setattr(int dfd, const char *path, unsigned int flags,
                     struct mk_mount_attr *attr, size_t size)
{
    return (int)syscall(__NR_mount_setattr, dfd, path, flags, attr, size);
}

int mk_fsopen(const char *fsname, unsigned int flags)
{
    return (int)syscall(__NR_fsopen, fsname, flags);
}

int mk_fsconfig(int fd, unsigned int cmd, const char *key, const void *value,
                int aux)
{
    return (int)syscall(__NR_fsconfig, fd, cmd, key, value, aux);
}

int mk_fsmount(int fd, unsigned int flags, unsigned int attr_flags)
{
    return (int)syscall(__NR_fsmount, fd, flags, attr_flags);
}

int mk_fspick(int dfd, const char *path, unsigned int flags)
{
    return (int)syscall(__NR_fspick, dfd, path, flags);
}

int mk_statx(int dfd, const char *path, int flags, unsigned int mask,
             struct mk_statx *buf)
{
    return (int)syscall(__NR_statx, dfd, path, flags, mask, buf);
}

int mk_openat2(int dfd, const char *path, struct mk_open_how *how, size_t size)
{
    return (int)syscall(__NR_openat2, dfd, path, how, size);
}

long mk_listmount(const struct mk_mnt_id_req *req, uint64_t *ids, size_t nr,
                  unsigned int flags)
{
    return syscall(__NR_listmount, req, ids, nr, flags);
}

int mk_statmount(const struct mk_mnt_id_req *req, struct mk_statmount *buf,
                 size_t bufsize, unsigned int flags)
{
    return (int)syscall(__NR_statmount, req, buf, bufsize, flags);
}

int mk_unshare(int flags)
{
    return unshare(flags);
}

int mk_open_beneath(const char *root, const char *path, struct mk_open_how *how,
                    size_t size, int *which)
{
    *which = 0;
    int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0)
        return -1;
    *which = 1;
    int fd = (int)syscall(__NR_openat2, rfd, path, how, size);
    int saved = errno;
    close(rfd);
    errno = saved;
    return fd;
}

int mk_mkdir_beneath(const char *root, const char *parent, const char *name,
                     unsigned int mode, struct mk_open_how *how, size_t size,
                     int *which)
{
    int pfd = mk_open_beneath(root, parent, how, size, which);
    if (pfd < 0)
        return -1;
    *which = 2;
    int rc = mkdirat(pfd, name, (mode_t)mode) == 0 ? 1 : (errno == EEXIST ? 0 : -1);
    int saved = errno;
    close(pfd);
    errno = saved;
    return rc;
}

int mk_is_mount_root(int dfd, const char *path, int at_flags)
{
    struct mk_statx stx;
    if (syscall(__NR_statx, dfd, path, at_flags, 0, &stx) != 0)
        return -1;
    if (!(stx.stx_attributes_mask & MK_STATX_ATTR_MOUNT_ROOT))
        return -2;
    return (stx.stx_attributes & MK_STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
}

int mk_is_mount_root_cached(const char *path, int at_flags)
{
    if (!(at_flags & MK_AT_STATX_DONT_SYNC))
        return -3; /* the statx could wait for the server */
    struct mk_open_how how = {
        .flags = O_PATH | O_CLOEXEC | ((at_flags & MK_AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0),
        .resolve = MK_RESOLVE_CACHED,
    };
    int fd = (int)syscall(__NR_openat2, -100 /* AT_FDCWD */, path, &how, sizeof how);
    if (fd < 0)
        return (errno == ENOENT || errno == ENOTDIR) ? -1 : -3;
    int saved, root = mk_is_mount_root(fd, "", at_flags | MK_AT_EMPTY_PATH);
    saved = errno;
    close(fd);
    errno = saved;
    return root;
}

int mk_bind_state(int dfd, const char *path, int at_flags, int sdfd,
                  const char *spath, int s_flags, int *which)
{
    struct mk_statx tgt, src;
    *which = 0;
    if (syscall(__NR_statx, dfd, path, at_flags,
                MK_STATX_INO | MK_STATX_MNT_ID_UNIQUE, &tgt) != 0)
        return -1;
    if (!(tgt.stx_attributes_mask & MK_STATX_ATTR_MOUNT_ROOT))
        return -2;
    if (!(tgt.stx_attributes & MK_STATX_ATTR_MOUNT_ROOT))
        return 0;
    *which = 1;
    if (syscall(__NR_statx, sdfd, spath, s_flags, MK_STATX_INO, &src) != 0)
        return -1;
    int bits = MK_BIND_ROOT;
    if (src.stx_ino == tgt.stx_ino && src.stx_dev_major == tgt.stx_dev_major
        && src.stx_dev_minor == tgt.stx_dev_minor)
        bits |= MK_BIND_SAME;
    if (tgt.stx_mask & MK_STATX_MNT_ID_UNIQUE) {
        struct mk_mnt_id_req req = {.size = MK_MNT_ID_REQ_SIZE_VER0,
                                    .mnt_id = tgt.stx_mnt_id,
                                    .param = MK_STATMOUNT_MNT_BASIC};
        struct mk_statmount sm;
        if (syscall(__NR_statmount, &req, &sm, sizeof sm, 0) == 0)
            bits |= MK_BIND_RO_KNOWN
                    | ((sm.mnt_attr & MK_MOUNT_ATTR_RDONLY) ? MK_BIND_RO : 0);
    }
    return bits;
}

static void close_quietly(int fd)
{
    if (fd >= 0)
        close(fd);
}

int mk_bind_beneath(const char *root, const char *target, const char *source,
                    struct mk_open_how *how, size_t size, int probe_flags,
                    int source_flags, unsigned int clone_flags,
                    unsigned int setattr_flags, uint64_t attr_set,
                    uint64_t attr_clr, unsigned int move_flags)
{
    int tfd = -1, sfd = -1, mfd = -1, rc = -1, which;
    int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0)
        goto out;
    if ((tfd = (int)syscall(__NR_openat2, rfd, target, how, size)) < 0)
        goto out;
    if ((sfd = (int)syscall(__NR_openat2, rfd, source, how, size)) < 0)
        goto out;
    rc = mk_bind_state(tfd, "", probe_flags, sfd, "", source_flags, &which);
    if (rc != 0)
        goto out; /* a mount root already, cannot tell, or refused */
    rc = -1;
    if ((mfd = mk_open_tree(sfd, "", clone_flags)) < 0)
        goto out;
    if (attr_set || attr_clr) {
        struct mk_mount_attr attr = {.attr_set = attr_set, .attr_clr = attr_clr};
        if (mk_mount_setattr(mfd, "", setattr_flags, &attr, sizeof attr) != 0)
            goto out;
    }
    if (mk_move_mount(mfd, "", tfd, "", move_flags) != 0)
        goto out;
    rc = 0;
out:;
    int saved = errno;
    close_quietly(mfd); /* an unattached clone dies with its last descriptor */
    close_quietly(sfd);
    close_quietly(tfd);
    close_quietly(rfd);
    errno = saved;
    return rc;
}
