/* fanotify mount notifications (Linux 6.15+): the two syscalls, and a
 * parser of the event stream into (mask, mount id) pairs.
 *
 * Layouts follow include/uapi/linux/fanotify.h, spelled out (mk_ prefix)
 * because the build host's header may predate FAN_REPORT_MNT.  A mount event
 * is the fixed metadata followed by info records; the one of type
 * FAN_EVENT_INFO_TYPE_MNT (7) holds the 64-bit unique mount id, which
 * statmount(2) describes.
 */
#ifndef MOUNTKIT_FANOTIFY_H
#define MOUNTKIT_FANOTIFY_H

#include <stddef.h>
#include <stdint.h>

struct mk_fanotify_event_metadata {
    uint32_t event_len;
    uint8_t vers;
    uint8_t reserved;
    uint16_t metadata_len;
    uint64_t mask;
    int32_t fd;
    int32_t pid;
};

struct mk_fanotify_event_info_header {
    uint8_t info_type;
    uint8_t pad;
    uint16_t len;
};

struct mk_fanotify_event_info_mnt {
    struct mk_fanotify_event_info_header hdr;
    uint64_t mnt_id;
};

int mk_fanotify_init(unsigned int flags, unsigned int event_f_flags);
int mk_fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dfd,
                     const char *path);

/* Split len bytes read from a FAN_REPORT_MNT group into masks[i] and ids[i]
 * (at most cap events).  An event without a mount record (queue overflow)
 * gets id 0.  Returns the number of events, or -1 when the stream is not
 * whole events of metadata version 3. */
long mk_fan_mnt_events(const char *buf, size_t len, uint64_t *masks,
                       uint64_t *ids, size_t cap);

#endif
