#!/bin/bash
# PID 1 of the NFS test guest after switch_root: start the kernel NFS server on loopback, run the
# command the host asked for (in the host's working tree, shared read-write over 9p), write its
# exit status where the host reads it, and power off (qemu runs with -no-reboot).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
ctl=/run/nfsguest
trap 'sync; echo b > /proc/sysrq-trigger' EXIT
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
modprobe -a nfsd nfsv3 nfsv4 veth & modprobe=$!
mkdir -p /dev/pts /dev/shm /run/rpcbind /run/rpc_pipefs /srv/nfs /var/lib/nfs/v4recovery
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
busybox ip link set lo up
hostname nfsguest
cwd=$(<$ctl/cwd)
mkdir -p "$cwd"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 cwd "$cwd"

# The export: a tmpfs (which needs an explicit fsid; not 0, so v3 and v4 paths agree).
mount -t tmpfs -o mode=1777 nfsexport /srv/nfs
echo "/srv/nfs 127.0.0.1(rw,no_root_squash,insecure,no_subtree_check,fsid=1)" > /etc/exports
rpcbind
rpc.statd &
wait $modprobe
mount -t nfsd nfsd /proc/fs/nfsd
mount -t rpc_pipefs rpc_pipefs /run/rpc_pipefs
nfsdcld            # without it nfsd waits for a v4 client tracker and keeps a 90 s grace period
exportfs -r
rpc.mountd & rpc.nfsd --host 127.0.0.1 8
wait
echo Y 2>/dev/null > /proc/fs/nfsd/v4_end_grace || true
echo Y > /proc/fs/lockd/nlm_end_grace

port() { for p in /sys/class/virtio-ports/*; do [[ $(<"$p/name") == "$1" ]] && echo "/dev/${p##*/}"; done; }
: > $ctl/started
bash $ctl/cmd.sh </dev/null >"$(port out)" 2>"$(port err)"
echo $? > $ctl/rc
exit
