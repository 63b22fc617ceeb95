package controller

import (
	"context"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// createDispatcher sends creates off the workers. A worker records the pending
// create, reserves a place in the account's queue (twilio.Factory.Reserve) and
// hands the request here; a goroutine waits for one of the account's request
// slots, sends it, keeps the answer and wakes the object, whose next reconcile
// records the answer exactly as a create sent inline would have been. A worker
// therefore never waits 100 ms for Twilio while other objects could be written
// to the API server, and the account's slots stay busy while workers write.
//
// The answer lives in memory only: a manager that stops first leaves the
// pending record in status, which the next reconcile resolves by listing, as
// for any create whose answer was lost.
type createDispatcher struct {
	// ctx is the manager's: sends stop with it.
	ctx context.Context
	// timeout bounds one send, as ReconcileTimeout bounds an inline one.
	timeout time.Duration
	// events wakes the objects whose create was answered.
	events chan event.GenericEvent

	mu   sync.Mutex
	jobs map[types.UID]*dispatchedCreate
	// parked lists, per account SID, the objects that found its create queue
	// full, in order: each reservation that ends wakes the first.
	parked map[string][]types.NamespacedName
}

// dispatchedCreate is one create handed off, and once answered, its answer.
type dispatchedCreate struct {
	// pending is the record written before the create was sent; the answer
	// applies only while status still holds the same record.
	pending pendingRecord
	// st is the plan's step; currentGone says the owned webhook was gone.
	st          step
	currentGone bool
	// replayAfter is the spec's replay setting that was sent.
	replayAfter *int32

	done   bool
	doneAt time.Time
	wh     *twilio.Webhook
	err    error
}

// staleViewWait is how long an answer waits for the cache to show the pending
// record it belongs to (the wake can overtake the watch event of the record).
const staleViewWait = 10 * time.Second

func newCreateDispatcher(ctx context.Context, timeout time.Duration) *createDispatcher {
	return &createDispatcher{ctx: ctx, timeout: timeout, events: make(chan event.GenericEvent, 1024),
		jobs: map[types.UID]*dispatchedCreate{}, parked: map[string][]types.NamespacedName{}}
}

// park keeps an object that found its account's create queue full until a
// reservation of that account ends (the caller also requeues it later, in
// case the wake is lost).
func (d *createDispatcher) park(account string, key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !slices.Contains(d.parked[account], key) {
		d.parked[account] = append(d.parked[account], key)
	}
}

// unpark takes an object that got a place off the account's list, so that no
// place's end is spent waking it.
func (d *createDispatcher) unpark(account string, key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i := slices.Index(d.parked[account], key); i >= 0 {
		d.parked[account] = slices.Delete(d.parked[account], i, i+1)
	}
}

// releaser ends a reservation and wakes the first object parked for the account.
func (d *createDispatcher) releaser(account string, release func()) func() {
	return func() {
		release()
		d.mu.Lock()
		queue := d.parked[account]
		if len(queue) == 0 {
			d.mu.Unlock()
			return
		}
		key := queue[0]
		if d.parked[account] = queue[1:]; len(d.parked[account]) == 0 {
			delete(d.parked, account)
		}
		d.mu.Unlock()
		d.wake(key)
	}
}

func (d *createDispatcher) wake(key types.NamespacedName) {
	obj := &v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}
	select {
	case d.events <- event.GenericEvent{Object: obj}:
	case <-d.ctx.Done():
	}
}

// start sends a create in the background. release ends the account
// reservation taken for it, once Twilio answered.
func (d *createDispatcher) start(obj *v1alpha1.ConversationWebhook, job *dispatchedCreate, release func(),
	send func(context.Context) (*twilio.Webhook, error)) {
	d.mu.Lock()
	d.jobs[obj.UID] = job
	d.mu.Unlock()
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
	go func() {
		ctx, cancel := context.WithTimeout(d.ctx, d.timeout)
		wh, err := send(ctx)
		cancel()
		release()
		d.mu.Lock()
		job.wh, job.err, job.done, job.doneAt = wh, err, true, time.Now()
		d.mu.Unlock()
		d.wake(key)
	}()
}

// peek returns a copy of the object's dispatched create (nil when none).
func (d *createDispatcher) peek(uid types.UID) *dispatchedCreate {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	job := d.jobs[uid]
	if job == nil {
		return nil
	}
	out := *job
	return &out
}

// forget drops an answered create once it was applied (or can no longer be).
func (d *createDispatcher) forget(uid types.UID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if job := d.jobs[uid]; job != nil && job.done {
		delete(d.jobs, uid)
	}
}

// matches says the answer belongs to the create status still records as pending.
func (j *dispatchedCreate) matches(p *pendingRecord) bool {
	return p != nil && p.recorded && p.since.Equal(j.pending.since) && p.scope == j.pending.scope &&
		p.fingerprint == j.pending.fingerprint
}
