#!/bin/busybox sh
# PID 1 of the NFS test guest's initramfs: mount the host's / (9p, read-only) as the lower layer
# of a tmpfs root with one overlay per top-level directory (an overlay root cannot be the NFSv4
# pseudo-root: it has no export operations), then switch_root into guest-init.sh.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
while read -r m; do insmod "/mods/${m##*/}"; done < /mods/order
o=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o $o,ro,cache=loose hostroot /lower
mount -t tmpfs -o mode=755 root /newroot
mount -t tmpfs rw /rw
cd /lower
for d in *; do
    if [ -L "$d" ]; then cp -a "$d" /newroot/
    elif [ -d "$d" ]; then
        mkdir "/newroot/$d"
        case $d in proc|sys|dev|run|srv|tmp) continue ;; esac
        mkdir -p "/rw/$d/u" "/rw/$d/w"
        mount -t overlay -o "lowerdir=/lower/$d,upperdir=/rw/$d/u,workdir=/rw/$d/w" overlay "/newroot/$d"
    fi
done
cd /
mount -t tmpfs -o mode=755 run /newroot/run
mount -t tmpfs -o mode=1777 tmp /newroot/tmp
mkdir /newroot/run/nfsguest
mount -t 9p -o $o ctl /newroot/run/nfsguest
umount /proc /dev
exec switch_root /newroot /bin/bash "$(cat /newroot/run/nfsguest/init)"
