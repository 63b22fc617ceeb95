package main

import (
	"context"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// leaseValidity is how long after its last renewal this manager counts itself
// the lease's holder: controller-runtime's renew deadline (10s), well inside
// the lease duration (15s) after which another manager may take it.
const leaseValidity = 10 * time.Second

// fencedLock is the leader-election lock, recording when this manager last
// created or renewed the lease. It is the manager's LeaseFence.
type fencedLock struct {
	resourcelock.Interface
	now     func() time.Time
	renewed atomic.Int64 // unix nanoseconds of the last successful create or renewal
}

// Create takes the lease and records the time.
func (l *fencedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, ler)
	l.mark(err)
	return err
}

// Update renews the lease and records the time.
func (l *fencedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, ler)
	l.mark(err)
	return err
}

func (l *fencedLock) mark(err error) {
	if err == nil {
		l.renewed.Store(l.now().UnixNano())
	}
}

// Held is true while the last renewal is younger than leaseValidity. The
// monotonic clock is not at hand here, so a frozen process is measured on the
// wall clock, which runs on while it is stopped.
func (l *fencedLock) Held() bool {
	last := l.renewed.Load()
	return last != 0 && l.now().Sub(time.Unix(0, last)) < leaseValidity
}

// newFencedLock builds controller-runtime's own lease lock and wraps it.
func newFencedLock(cfg *rest.Config, namespace, id string) (*fencedLock, error) {
	inner, err := leaderelection.NewResourceLock(cfg, quietRecorders{}, leaderelection.Options{
		LeaderElection: true, LeaderElectionID: id, LeaderElectionNamespace: namespace, RenewDeadline: leaseValidity,
	})
	if err != nil {
		return nil, err
	}
	return &fencedLock{Interface: inner, now: time.Now}, nil
}

// quietRecorders records no leader-election events (the manager logs them);
// the lock uses the old events API only.
type quietRecorders struct{}

func (quietRecorders) GetEventRecorderFor(string) record.EventRecorder { return &record.FakeRecorder{} }
func (quietRecorders) GetEventRecorder(string) recorder.EventRecorder  { return nil }
