"""Leader election over a coordination.k8s.io Lease, as client-go's leaderelection does it.

Every replica of the lock-release controller (one per node in the DaemonSet, or the standalone
Deployment's) tries to hold the Lease ``filestore-csi-storage-gke-io-node`` in
``gke-managed-filestorecsi`` (GFD's name), so exactly one of them releases locks. A replica takes the
Lease when it is absent or its holder has not renewed it for ``leaseDurationSeconds``, and renews it
every ``retry_period``; writes carry the resourceVersion read, so of two replicas racing for an expired
Lease one gets 409 Conflict and stays a follower. A leader that has not renewed within
``renew_deadline`` stops acting (GFD exits the process then).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import threading
import time

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from csi.lockrelease.flags import LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD
from csi.lockrelease.lockinfo import LEASE_NAME, NAMESPACE

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0


class LeaseElector:
    """Holds the Lease for ``identity``; :attr:`leading` is set while this replica may act."""

    def __init__(
        self,
        api: client.ApiClient,
        identity: str,
        *,
        lease_duration: float = LEASE_DURATION,
        renew_deadline: float = RENEW_DEADLINE,
        retry_period: float = RETRY_PERIOD,
        name: str = LEASE_NAME,
        namespace: str = NAMESPACE,
    ) -> None:
        self._coord = client.CoordinationV1Api(api)
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.name = name
        self.namespace = namespace
        self.leading = threading.Event()

    @classmethod
    def from_flags(cls, api: client.ApiClient, identity: str, args: argparse.Namespace) -> LeaseElector:
        """An elector timed by the ``--leader-election-*`` flags (:func:`csi.lockrelease.flags.add_flags`)."""
        return cls(
            api,
            identity,
            lease_duration=args.leader_election_lease_duration,
            renew_deadline=args.leader_election_renew_deadline,
            retry_period=args.leader_election_retry_period,
        )

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True when this replica holds the Lease afterwards."""
        now = datetime.datetime.now(datetime.UTC)
        seconds = max(1, round(self.lease_duration))
        try:
            try:
                lease = self._coord.read_namespaced_lease(
                    self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                spec = client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=seconds,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                )
                body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name), spec=spec)
                self._coord.create_namespaced_lease(self.namespace, body, _request_timeout=REQUEST_TIMEOUT)
                return True
            spec = lease.spec or client.V1LeaseSpec()
            if spec.holder_identity != self.identity:
                renewed = spec.renew_time or spec.acquire_time
                held_for = datetime.timedelta(seconds=spec.lease_duration_seconds or 0)
                if spec.holder_identity and renewed is not None and now < renewed + held_for:
                    return False
                spec.holder_identity = self.identity
                spec.acquire_time = now
                spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.renew_time = now
            spec.lease_duration_seconds = seconds
            lease.spec = spec
            self._coord.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=REQUEST_TIMEOUT
            )
            return True
        except ApiException as exc:
            if exc.status != 409:  # 409: another replica wrote first
                log.warning("lease %s/%s: %s %s", self.namespace, self.name, exc.status, exc.reason)
            return False
        except (HTTPError, OSError) as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    def run(self, stop: threading.Event) -> None:
        """Acquire and renew until ``stop``; :attr:`leading` follows (cleared past the renew deadline)."""
        last_renewal = 0.0
        while not stop.is_set():
            if self.try_acquire_or_renew():
                last_renewal = time.monotonic()
                if not self.leading.is_set():
                    log.info("%s now leads (lease %s/%s)", self.identity, self.namespace, self.name)
                    self.leading.set()
            elif self.leading.is_set() and time.monotonic() - last_renewal > self.renew_deadline:
                log.error(
                    "%s lost the lease %s/%s: it stops acting", self.identity, self.namespace, self.name
                )
                self.leading.clear()
            stop.wait(self.retry_period)
        self.leading.clear()
