package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

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
	// full, in order: a reservation that ends wakes the first ones.
	parked map[string]*parkedQueue
	// woken holds the objects enqueued at wakePriority and not reconciled
	// since: their requeue goes back to the default priority (takeWoken).
	woken map[types.NamespacedName]bool
}

// parkedQueue is a FIFO of object keys with O(1) membership: an object taken
// off (unpark) stays in order as a tombstone, skipped when reached.
type parkedQueue struct {
	order []types.NamespacedName
	in    map[types.NamespacedName]bool
}

func (q *parkedQueue) push(key types.NamespacedName) {
	if q.in[key] {
		return
	}
	q.in[key] = true
	q.order = append(q.order, key)
}

// pop takes up to n keys still parked, oldest first.
func (q *parkedQueue) pop(n int) []types.NamespacedName {
	var out []types.NamespacedName
	for len(out) < n && len(q.order) > 0 {
		key := q.order[0]
		q.order = q.order[1:]
		if q.in[key] {
			delete(q.in, key)
			out = append(out, key)
		}
	}
	return out
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
	// generation is the object's generation the create was sent for.
	generation int64

	done   bool
	doneAt time.Time
	wh     *twilio.Webhook
	err    error
	// appliedAt is when status recorded the answer (the webhook it made, or
	// for a refusal the pending record dropped); zero until then. The answer
	// is kept until the view shows that write, so that a reconcile on an older
	// view does not take the pending record for a lost create and list the
	// conversation.
	appliedAt time.Time
	// writtenRV is the object's resourceVersion once the pending record and
	// its annotation were written; appliedRV once status recorded the answer.
	// A view older than the write has not seen it (see awaitsView).
	writtenRV, appliedRV string
	// seen says the object's watch has delivered a view that shows the
	// record of the answer (seen): the answer is swept staleViewWait after
	// it was applied, as one whose versions do not compare.
	seen bool
	// awaiting says a reconcile found the view older than the pending
	// record's write: the watch's first view that shows it wakes the object.
	awaiting bool
	// viewRV is the newest view the watch delivered before the answer was
	// applied: the event of the write that records it can come before the
	// write's own answer does.
	viewRV string
}

// staleViewWait is how long an answer waits for the cache to show the pending
// record it belongs to (the wake can overtake the watch event of the record),
// or the record of its answer, when resourceVersions do not say whether the
// view has seen that write.
const staleViewWait = 10 * time.Second

// awaitsView says whether a view (its resourceVersion) has yet to show a write
// of the create's record (the resourceVersion the write returned), since
// since: while the view is older than the write, however long the cache lags,
// up to forgetAfter (a view that never gets there, an etcd restored from a
// snapshot taken in between, say, is then resolved as any pending record is);
// where either version is not an integer as the API server writes them
// (resourceversion.CompareResourceVersion), for staleViewWait.
func awaitsView(view, write string, since time.Time) bool {
	if c, err := resourceversion.CompareResourceVersion(view, write); err == nil {
		return c < 0 && time.Since(since) < forgetAfter
	}
	return time.Since(since) < staleViewWait
}

// comparableRV says awaitsView can compare views with this write's version.
func comparableRV(rv string) bool { return atOrPast(rv, rv) }

// atOrPast says a view's resourceVersion is known to be at or past a write's.
func atOrPast(view, write string) bool {
	c, err := resourceversion.CompareResourceVersion(view, write)
	return err == nil && c >= 0
}

func newCreateDispatcher(ctx context.Context, timeout time.Duration) *createDispatcher {
	return &createDispatcher{ctx: ctx, timeout: timeout, events: make(chan event.GenericEvent, 1024),
		jobs: map[types.UID]*dispatchedCreate{}, parked: map[string]*parkedQueue{},
		woken: map[types.NamespacedName]bool{}}
}

// park keeps an object that found its account's create queue full until a
// reservation of that account ends (the caller also requeues it later, in
// case the wake is lost).
func (d *createDispatcher) park(account string, key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.parked[account]
	if q == nil {
		q = &parkedQueue{in: map[types.NamespacedName]bool{}}
		d.parked[account] = q
	}
	q.push(key)
}

// unpark takes an object that got a place off the account's list, so that no
// place's end is spent waking it.
func (d *createDispatcher) unpark(account string, key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q := d.parked[account]; q != nil {
		delete(q.in, key)
	}
}

// releaser ends a reservation and wakes as many of the account's parked
// objects, in order, as it has places free now (reservable), so that a wake
// spent on an object that no longer needs a place strands no other.
func (d *createDispatcher) releaser(account string, release func(), reservable func(string) int) func() {
	return func() {
		release()
		d.mu.Lock()
		var woken []types.NamespacedName
		if q := d.parked[account]; q != nil {
			woken = q.pop(reservable(account))
			if len(q.in) == 0 {
				delete(d.parked, account)
			}
		}
		d.mu.Unlock()
		for _, key := range woken {
			d.wake(key)
		}
	}
}

// unapplied lists the webhooks this manager's creates made whose answers are
// not yet seen recorded (but the object's own): no other object's recovery may
// take one of them for its own lost create.
func (d *createDispatcher) unapplied(except types.UID) []string {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for uid, job := range d.jobs {
		if uid != except && job.done && job.wh != nil && job.wh.Sid != "" {
			out = append(out, job.wh.Sid)
		}
	}
	return out
}

// wakePriority is the workqueue priority of a wake: ahead of new objects and
// periodic checks, so that a freed place in an account's queue, or an answer
// to record, does not wait behind thousands of objects whose first reconcile
// only parks them (controller-runtime's priority queue, its default).
const wakePriority = 10

// seenHandler tells the dispatcher each new view of an object, from the
// object's watch (the reconciler's own watch drops updates of status and of
// the operator's annotations): a view that shows the record of an applied
// answer lets it be swept; one that shows the pending record an answer waits
// for wakes the object at wakePriority.
func (d *createDispatcher) seenHandler() handler.EventHandler {
	return handler.Funcs{UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if !d.seen(e.ObjectNew.GetUID(), e.ObjectNew.GetResourceVersion()) {
			return
		}
		key := client.ObjectKeyFromObject(e.ObjectNew)
		d.markWoken(key)
		enqueueWoken(q, key)
	}}
}

// seen records a view of the object (its resourceVersion rv): an applied
// answer whose record it shows is marked seen (or, for a view that came before
// the answer was marked applied, is once it is); an answer a reconcile found the
// view too old for is woken (true) by the first view that shows its pending
// record — once, so that the operator's own writes while it applies the
// answer wake nothing.
func (d *createDispatcher) seen(uid types.UID, rv string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	job := d.jobs[uid]
	switch {
	case job == nil || !job.done:
		return false
	case !job.appliedAt.IsZero():
		if atOrPast(rv, job.appliedRV) {
			job.seen = true
		}
		return false
	}
	if !atOrPast(job.viewRV, rv) {
		job.viewRV = rv
	}
	if job.awaiting && atOrPast(rv, job.writtenRV) {
		job.awaiting = false
		return true
	}
	return false
}

// awaitView records that a reconcile found the view older than the pending
// record of the object's answer (awaiting true; see seen), or that one is
// applying the answer (false): no view wakes it since.
func (d *createDispatcher) awaitView(uid types.UID, awaiting bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if job := d.jobs[uid]; job != nil && job.done && job.appliedAt.IsZero() {
		job.awaiting = awaiting
	}
}

// wakeHandler enqueues woken objects at wakePriority.
func wakeHandler() handler.EventHandler {
	return handler.Funcs{GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueueWoken(q, client.ObjectKeyFromObject(e.Object))
	}}
}

// enqueueWoken adds a woken object to the queue at wakePriority (a queue
// without priorities takes it as any other).
func enqueueWoken(q workqueue.TypedRateLimitingInterface[reconcile.Request], key types.NamespacedName) {
	req := reconcile.Request{NamespacedName: key}
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: new(wakePriority)}, req)
		return
	}
	q.Add(req)
}

func (d *createDispatcher) wake(key types.NamespacedName) {
	d.markWoken(key)
	obj := &v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}
	select {
	case d.events <- event.GenericEvent{Object: obj}:
	case <-d.ctx.Done():
	}
}

// markWoken records that the object is (again) in the workqueue at wakePriority.
func (d *createDispatcher) markWoken(key types.NamespacedName) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.woken[key] = true
}

// takeWoken says whether the object was enqueued at wakePriority since its
// last reconcile, and forgets it.
func (d *createDispatcher) takeWoken(key types.NamespacedName) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	woken := d.woken[key]
	delete(d.woken, key)
	return woken
}

// start sends a create in the background. release ends the account
// reservation taken for it, once Twilio answered.
func (d *createDispatcher) start(obj *v1alpha1.ConversationWebhook, job *dispatchedCreate, release func(),
	send func(context.Context) (*twilio.Webhook, error)) {
	d.mu.Lock()
	d.sweepLocked()
	d.jobs[obj.UID] = job
	d.mu.Unlock()
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
	go func() {
		ctx, cancel := context.WithTimeout(d.ctx, d.timeout)
		wh, err := sendRecovering(ctx, send)
		cancel()
		release()
		d.mu.Lock()
		job.wh, job.err, job.done, job.doneAt = wh, err, true, time.Now()
		d.mu.Unlock()
		d.wake(key)
	}()
}

// forgetAfter is how long an answer nobody applied is kept (an object paused,
// deleted without its finalizer, or whose account went away): after it, a
// pending record still in status is resolved by listing.
const forgetAfter = 10 * time.Minute

func (d *createDispatcher) sweepLocked() {
	for uid, job := range d.jobs {
		if job.done && time.Since(job.doneAt) > forgetAfter ||
			!job.appliedAt.IsZero() && (job.seen || !comparableRV(job.appliedRV)) &&
				time.Since(job.appliedAt) > staleViewWait {
			delete(d.jobs, uid)
		}
	}
}

// sendRecovering sends, turning a panic into an unknown outcome (the pending
// record stays, resolved by listing) instead of the manager's end.
func sendRecovering(ctx context.Context, send func(context.Context) (*twilio.Webhook, error)) (wh *twilio.Webhook, err error) {
	defer func() {
		if p := recover(); p != nil {
			wh, err = nil, fmt.Errorf("sending the create panicked: %v", p)
		}
	}()
	return send(ctx)
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

// applied marks an answered create whose answer status now records, in the
// write that returned resourceVersion rv.
func (d *createDispatcher) applied(uid types.UID, rv string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if job := d.jobs[uid]; job != nil && job.done && job.appliedAt.IsZero() {
		job.appliedAt, job.appliedRV = time.Now(), rv
		job.seen = atOrPast(job.viewRV, rv)
	}
}

// matches says the answer belongs to the create status still records as pending.
func (j *dispatchedCreate) matches(p *pendingRecord) bool {
	return p != nil && p.recorded && p.since.Equal(j.pending.since) && p.scope == j.pending.scope &&
		p.fingerprint == j.pending.fingerprint
}
