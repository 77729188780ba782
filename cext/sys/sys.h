/* Kernel ABI for mountkit: struct layouts and syscall wrappers.
 *
 * The structs are spelled out here (mk_ prefix) rather than taken from
 * <linux/mount.h>: the build host's headers may predate statmount/listmount,
 * and <linux/mount.h> clashes with glibc's <sys/mount.h>.  Layouts follow the
 * kernel's uapi headers; the kernel accepts older (shorter) sizes, so the
 * sizes passed are the ones declared here.
 */
#ifndef MOUNTKIT_SYS_H
#define MOUNTKIT_SYS_H

#include <stddef.h>
#include <stdint.h>

struct mk_statx_timestamp {
    int64_t tv_sec;
    uint32_t tv_nsec;
    int32_t __reserved;
};

struct mk_statx {
    uint32_t stx_mask;
    uint32_t stx_blksize;
    uint64_t stx_attributes;
    uint32_t stx_nlink;
    uint32_t stx_uid;
    uint32_t stx_gid;
    uint16_t stx_mode;
    uint16_t __spare0;
    uint64_t stx_ino;
    uint64_t stx_size;
    uint64_t stx_blocks;
    uint64_t stx_attributes_mask;
    struct mk_statx_timestamp stx_atime;
    struct mk_statx_timestamp stx_btime;
    struct mk_statx_timestamp stx_ctime;
    struct mk_statx_timestamp stx_mtime;
    uint32_t stx_rdev_major;
    uint32_t stx_rdev_minor;
    uint32_t stx_dev_major;
    uint32_t stx_dev_minor;
    uint64_t stx_mnt_id;
    uint32_t stx_dio_mem_align;
    uint32_t stx_dio_offset_align;
    uint64_t __spare3[12];
};

struct mk_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

struct mk_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

/* uapi values (mountkit/flags.py holds the same for Python) */
#define MK_STATMOUNT_SB_BASIC 0x1ULL
#define MK_STATMOUNT_MNT_BASIC 0x2ULL
#define MK_STATMOUNT_PROPAGATE_FROM 0x4ULL
#define MK_STATMOUNT_MNT_ROOT 0x8ULL
#define MK_STATMOUNT_MNT_POINT 0x10ULL
#define MK_STATMOUNT_FS_TYPE 0x20ULL
#define MK_STATMOUNT_MNT_OPTS 0x80ULL
#define MK_STATMOUNT_FS_SUBTYPE 0x100ULL
#define MK_STATMOUNT_SB_SOURCE 0x200ULL
#define MK_LSMT_ROOT 0xffffffffffffffffULL
#define MK_MNT_ID_REQ_SIZE_VER0 24
#define MK_MOUNT_ATTR_RDONLY 0x1ULL
#define MK_MOUNT_ATTR_NOSUID 0x2ULL
#define MK_MOUNT_ATTR_NODEV 0x4ULL
#define MK_MOUNT_ATTR_NOEXEC 0x8ULL
#define MK_MOUNT_ATTR__ATIME 0x70ULL
#define MK_MOUNT_ATTR_NOATIME 0x10ULL
#define MK_MOUNT_ATTR_NODIRATIME 0x80ULL
#define MK_MOUNT_ATTR_IDMAP 0x100000ULL
#define MK_MOUNT_ATTR_NOSYMFOLLOW 0x200000ULL

struct mk_mnt_id_req {
    uint32_t size;
    uint32_t spare;
    uint64_t mnt_id;
    uint64_t param;
    uint64_t mnt_ns_id;
};

struct mk_statmount {
    uint32_t size;
    uint32_t mnt_opts;
    uint64_t mask;
    uint32_t sb_dev_major;
    uint32_t sb_dev_minor;
    uint64_t sb_magic;
    uint32_t sb_flags;
    uint32_t fs_type;
    uint64_t mnt_id;
    uint64_t mnt_parent_id;
    uint32_t mnt_id_old;
    uint32_t mnt_parent_id_old;
    uint64_t mnt_attr;
    uint64_t mnt_propagation;
    uint64_t mnt_peer_group;
    uint64_t mnt_master;
    uint64_t propagate_from;
    uint32_t mnt_root;
    uint32_t mnt_point;
    uint64_t mnt_ns_id;
    uint32_t fs_subtype;
    uint32_t sb_source;
    uint32_t opt_num;
    uint32_t opt_array;
    uint32_t sec_opt_num;
    uint32_t sec_opt_array;
    uint64_t supported_mask;
    uint32_t mnt_uidmap_num;
    uint32_t mnt_uidmap;
    uint32_t mnt_gidmap_num;
    uint32_t mnt_gidmap;
    uint64_t __spare2[43];
    char str[];
};

/* Every wrapper returns -1 with errno set on failure, like libc. */
int mk_mount(const char *source, const char *target, const char *fstype,
             unsigned long flags, const void *data);
int mk_umount2(const char *target, int flags);
/* umount2(target, flags) until it says no mount is left there (EINVAL, or
 * ENOENT/ENOTDIR for a missing target): 0, with every stacked mount gone;
 * -1 with errno from the umount2 that refused otherwise.  The loop is in C
 * so that the common case (one mount, then EINVAL) is one call, on the
 * caller's thread or on a probe worker (MK_PROBE_UNMOUNT). */
int mk_unmount(const char *target, int flags);
int mk_open_tree(int dfd, const char *path, unsigned int flags);
int mk_move_mount(int from_dfd, const char *from_path, int to_dfd,
                  const char *to_path, unsigned int flags);
int mk_mount_setattr(int dfd, const char *path, unsigned int flags,
                     struct mk_mount_attr *attr, size_t size);
int mk_fsopen(const char *fsname, unsigned int flags);
int mk_fsconfig(int fd, unsigned int cmd, const char *key, const void *value,
                int aux);
int mk_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
int mk_fspick(int dfd, const char *path, unsigned int flags);
int mk_statx(int dfd, const char *path, int flags, unsigned int mask,
             struct mk_statx *buf);
int mk_openat2(int dfd, const char *path, struct mk_open_how *how, size_t size);
long mk_listmount(const struct mk_mnt_id_req *req, uint64_t *ids, size_t nr,
                  unsigned int flags);
int mk_statmount(const struct mk_mnt_id_req *req, struct mk_statmount *buf,
                 size_t bufsize, unsigned int flags);
int mk_unshare(int flags);

/* safepath.open_beneath in one call: a descriptor of root (O_PATH |
 * O_DIRECTORY), openat2 of path from it with how, and root closed again.
 * Returns the new descriptor, or -1 with errno and *which 0 (root could not
 * be opened) or 1 (the openat2 refused). */
int mk_open_beneath(const char *root, const char *path, struct mk_open_how *how,
                    size_t size, int *which);

/* mkdirat(parent, name, mode), the parent opened beneath root (O_PATH |
 * O_DIRECTORY, openat2 with how) and closed in the same call: a kubelet
 * target made in one crossing.  Returns 1 made, 0 it exists already, or -1
 * with errno and *which 0 (root could not be opened), 1 (the openat2
 * refused) or 2 (mkdirat refused). */
int mk_mkdir_beneath(const char *root, const char *parent, const char *name,
                     unsigned int mode, struct mk_open_how *how, size_t size,
                     int *which);

/* One statx call answering "is path the root of a mount?": 1 yes, 0 no,
 * -2 the kernel cannot tell (no STATX_ATTR_MOUNT_ROOT, before 5.8), -1 errno. */
int mk_is_mount_root(int dfd, const char *path, int at_flags);

/* mk_is_mount_root of path on the calling thread, only where that provably
 * cannot wait on a filesystem (at_flags must hold AT_STATX_DONT_SYNC): openat2
 * with RESOLVE_CACHED walks the path in RCU mode alone and fails with EAGAIN
 * where any component would need a lookup or a revalidation (nfs and fuse
 * d_revalidate answer -ECHILD under LOOKUP_RCU instead of asking the server;
 * O_PATH opens nothing and its final weak revalidation asks no server without
 * LOOKUP_OPEN), and the statx of that descriptor asks for no attribute with
 * AT_STATX_DONT_SYNC (nfs_getattr and fuse_update_get_attr answer from the
 * inode) while STATX_ATTR_MOUNT_ROOT comes from the VFS.  Returns as
 * mk_is_mount_root (-1 only for ENOENT/ENOTDIR from the walk), or -3: not
 * all in the cache, or openat2/RESOLVE_CACHED unknown (before 5.12); ask a
 * worker (mk_probe). */
int mk_is_mount_root_cached(const char *path, int at_flags);

/* A bind's target and source in one call: statx of the target (dfd, path,
 * at_flags), and when it is a mount root, statx of the source (sdfd, spath,
 * s_flags) and statmount of the target's mount.  Returns MK_BIND_* bits, -2
 * when the kernel cannot tell a mount root (before 5.8), or -1 with errno set
 * and *which 0 (the target failed) or 1 (the source). */
enum mk_bind_bits {
    MK_BIND_ROOT = 1,    /* the target is the root of a mount */
    MK_BIND_SAME = 2,    /* ... showing the source's inode */
    MK_BIND_RO_KNOWN = 4, /* statmount answered (6.8+) */
    MK_BIND_RO = 8       /* ... and that mount is read-only */
};
int mk_bind_state(int dfd, const char *path, int at_flags, int sdfd,
                  const char *spath, int s_flags, int *which);

/* A whole bind beneath a root in one call, so a publish crosses from Python
 * into the kernel once (under concurrency every crossing is a GIL hand-off):
 * root opened once; target and source opened from it (openat2 with how);
 * mk_bind_state of the two (probe_flags, source_flags); and only when the
 * target is no mount root, the bind: open_tree(source, clone_flags), when
 * attr_set or attr_clr mount_setattr(setattr_flags), move_mount(move_flags)
 * onto the target; every descriptor closed again.  Returns 0 once bound;
 * anything else when nothing was bound: MK_BIND_* bits (a mount root is there
 * already), -2 (the kernel cannot tell a mount root), -1 with errno (any step
 * refused).  The caller then takes its general way, which names the failure
 * and judges a mount already there, so the errors stay in one place. */
int mk_bind_beneath(const char *root, const char *target, const char *source,
                    struct mk_open_how *how, size_t size, int probe_flags,
                    int source_flags, unsigned int clone_flags,
                    unsigned int setattr_flags, uint64_t attr_set,
                    uint64_t attr_clr, unsigned int move_flags);

#endif
