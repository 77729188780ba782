/* fanotify wrappers (syscall(2): glibc's wrapper may be missing or take the
 * mask in two halves) and the mount-event parser declared in fanotify.h. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fanotify.h"

#define MK_FANOTIFY_METADATA_VERSION 3
#define MK_FAN_EVENT_INFO_TYPE_MNT 7

int mk_fanotify_init(unsigned int flags, unsigned int event_f_flags)
{
    return (int)syscall(__NR_fanotify_init, flags, event_f_flags);
}

int mk_fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dfd,
                     const char *path)
{
    return (int)syscall(__NR_fanotify_mark, fd, flags, mask, dfd, path);
}

long mk_fan_mnt_events(const char *buf, size_t len, uint64_t *masks,
                       uint64_t *ids, size_t cap)
{
    size_t off = 0, n = 0;
    while (off < len && n < cap) {
        struct mk_fanotify_event_metadata meta;
        if (len - off < sizeof meta)
            return -1;
        memcpy(&meta, buf + off, sizeof meta);
        if (meta.vers != MK_FANOTIFY_METADATA_VERSION || meta.event_len < meta.metadata_len
            || meta.metadata_len < sizeof meta || meta.event_len > len - off)
            return -1;
        masks[n] = meta.mask;
        ids[n] = 0;
        size_t rec = off + meta.metadata_len, end = off + meta.event_len;
        while (end - rec >= sizeof(struct mk_fanotify_event_info_header)) {
            struct mk_fanotify_event_info_header hdr;
            memcpy(&hdr, buf + rec, sizeof hdr);
            if (hdr.len < sizeof hdr || hdr.len > end - rec)
                return -1;
            if (hdr.info_type == MK_FAN_EVENT_INFO_TYPE_MNT
                && hdr.len >= sizeof(struct mk_fanotify_event_info_mnt)) {
                struct mk_fanotify_event_info_mnt info;
                memcpy(&info, buf + rec, sizeof info);
                ids[n] = info.mnt_id;
            }
            rec += hdr.len;
        }
        n++;
        off = end;
    }
    return (long)n;
}
