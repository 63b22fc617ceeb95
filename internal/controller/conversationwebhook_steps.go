package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// Event reasons for changes made in Twilio, and warnings.
const (
	EventCreated        = "Created"
	EventUpdated        = "Updated"
	EventDriftCorrected = "DriftCorrected"
	EventRecreated      = "Recreated"
	EventReplaced       = "Replaced"
	EventAdopted        = "Adopted"
	EventDeleted        = "Deleted"
	EventOrphaned       = "Orphaned"
	// EventPossibleOrphan (Warning) names webhooks that may be the unrecognisable
	// result of a create whose answer was lost.
	EventPossibleOrphan = "PossibleOrphan"
	// EventStaleWebhookSid (Warning): the webhook-sid annotation names a webhook
	// that does not exist while the object manages one that does; the operator
	// keeps the one it manages and rewrites the annotation.
	EventStaleWebhookSid = "StaleWebhookSid"
	// EventLegacyAnnotation (Warning): an annotation of an earlier version was
	// found; it is not obeyed, and removed.
	EventLegacyAnnotation = "LegacyAnnotation"
)

// maxSteps bounds the steps of one reconcile; a create, its record and the
// deletion of a superseded webhook take three.
const maxSteps = 6

// waitError asks to reconcile again after a while, without counting as a failure.
type waitError struct{ after time.Duration }

func (e *waitError) Error() string {
	return fmt.Sprintf("a create may still be in flight; looking for its webhook again in %s", e.after.Round(time.Second))
}

// inFlightFor is how much longer the object's pending create may still be in
// flight (PendingGrace from its stamp), or 0 when it can no longer be. A stamp
// further ahead than clocks differ (a status restored from elsewhere, a leader
// whose clock ran ahead, a hand-written create-pending) is not credible: no
// create waits for it, or the object would wait until that time.
func (r *ConversationWebhookReconciler) inFlightFor(p *pendingRecord) time.Duration {
	now := r.Clock.Now()
	if !credibleStamp(p.since, now) {
		return 0
	}
	return max(p.since.Add(r.PendingGrace).Sub(now), 0)
}

// credibleStamp says a pending create's stamp is not further ahead of now
// than clocks differ (unknownSlack): the object's own, or another's (elsewhere).
func credibleStamp(since, now time.Time) bool {
	return !since.After(now.Add(unknownSlack))
}

// errNotConverged is returned when a reconcile ran out of steps.
var errNotConverged = errors.New("not converged after the steps one reconcile may take; retrying")

// reconcileState is one reconcile's object and what the API server last stored.
type reconcileState struct {
	obj  *v1alpha1.ConversationWebhook
	base *v1alpha1.ConversationWebhook
	// account is the verified SID of the object's Twilio account.
	account string
	// flush is a ledger recorded in memory only: it is written (the
	// annotations that mirror it, then status) before the next Twilio write,
	// or when the reconcile ends, with its conditions: one status write, not two.
	flush *ledger
	// answered: flush holds the answer of this object's dispatched create,
	// kept among the dispatcher's unapplied answers until status records it.
	answered bool
	// took: flush holds a webhook taken from Twilio (a lost create's result,
	// an adoption), which only the take lock keeps from others until written.
	took bool
	// unlock releases the conversation's take lock once flush is written
	// (Reconcile); nil when no lock is held past sync.
	unlock func()
	// turnedAway: the look found the account busy and sent nothing, or the
	// account's queue of creates was full; busyLooks keeps since when the
	// object's looks have been turned away (not forgotten when this ends).
	turnedAway bool
}

// holdUntilWritten releases a take lock at once, or, while a webhook taken
// from Twilio is recorded in memory only, once Reconcile has written it.
func (rs *reconcileState) holdUntilWritten(unlock func()) {
	if rs.flush == nil || !rs.took {
		unlock()
		return
	}
	rs.unlock = unlock
}

// takeScope is the conversation whose take lock a reconcile holds: a pending
// create's, or the spec's when it takes a webhook named by the annotation or,
// observing only, one that matches; false for none.
func takeScope(led *ledger, want desired) (twilio.Scope, bool) {
	switch {
	case led.pending != nil:
		return led.pending.scope, true
	case led.claimed() != "" || led.owned == nil && want.observeOnly:
		return want.scope, true
	}
	return twilio.Scope{}, false
}

// flushRecord writes a ledger recorded in memory, if any: the annotations that
// mirror it first, then status with the reconcile's conditions, so that whoever
// waits for Ready finds the webhook-sid annotation written. A stop between the
// two leaves status's pending record, resolved by listing, as after a lost
// answer; annotations alone are never trusted to decide a delete.
func (r *ConversationWebhookReconciler) flushRecord(ctx context.Context, rs *reconcileState) error {
	led := rs.flush
	if led == nil {
		return nil
	}
	rs.flush = nil
	// Under the object's resourceVersion, as the status write below.
	if err := r.writeMeta(ctx, rs, led, client.MergeFromWithOptimisticLock{}); err != nil {
		return err
	}
	writeRecord(&rs.obj.Status, led)
	if !equality.Semantic.DeepEqual(rs.base.Status, rs.obj.Status) {
		if err := r.writeStatus(ctx, rs); err != nil {
			return err
		}
	}
	if rs.answered {
		// Status records the create's answer: kept until the view shows it.
		r.creates.applied(rs.obj.UID, rs.obj.ResourceVersion)
		rs.answered = false
	}
	return nil
}

// writeMeta brings the annotations that mirror the ledger, and the finalizer
// that guards anything that may exist in Twilio, to the object, if they differ.
func (r *ConversationWebhookReconciler) writeMeta(ctx context.Context, rs *reconcileState, led *ledger, opts ...client.MergeFromOption) error {
	obj := rs.obj
	if led.metaInSync(obj) {
		return nil
	}
	guard := led.owned != nil || led.pending != nil || led.superseded != nil
	err := r.patchMeta(ctx, obj, func(o *v1alpha1.ConversationWebhook) {
		led.applyAnnotations(o)
		if guard {
			controllerutil.AddFinalizer(o, v1alpha1.Finalizer)
		}
	}, opts...)
	rs.base.ObjectMeta = *obj.ObjectMeta.DeepCopy()
	return err
}

// writeStatus patches status always with the object's resourceVersion: a record
// is never written over one another manager (a leader frozen past its lease,
// woken) or a stale view has moved on from.
func (r *ConversationWebhookReconciler) writeStatus(ctx context.Context, rs *reconcileState) error {
	obj := rs.obj
	patch := client.MergeFromWithOptions(rs.base, client.MergeFromWithOptimisticLock{})
	status := obj.Status.DeepCopy()
	if err := r.Status().Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("recording state in status: %w", err)
	}
	obj.Status = *status
	rs.base = obj.DeepCopy()
	return nil
}

// sync looks at Twilio once, then plans and acts one step at a time, each step
// observing the answer of the last, until nothing is left to do. It returns the
// webhook as Twilio last answered (nil when, observing only, none was found).
func (r *ConversationWebhookReconciler) sync(ctx context.Context, rs *reconcileState, api twilio.WebhookAPI) (*twilio.Webhook, error) {
	want := desiredOf(&rs.obj.Spec)
	led, err := readLedger(rs.obj, want)
	if err != nil {
		return nil, err
	}
	// Taking a webhook found in Twilio (a lost create's result, a webhook named
	// by the annotation, or, observing only, one that matches) is serialised per
	// conversation, so two objects never take the same one at once; a webhook
	// taken keeps the lock until status records it, so that another object's
	// look in the conversation finds it recorded, never takes or deletes it as
	// its own lost create's (a create's answer is kept from them as unapplied).
	if scope, ok := takeScope(&led, want); ok {
		defer rs.holdUntilWritten(r.takes.lock(scope))
	}
	// The look's first request does not wait for a slot of a busy account
	// (see busyRequeue), unless the object's looks have been turned away for
	// LookPatience: then this reconcile's requests wait ahead of the queue.
	lookCtx := twilio.WithoutWaiting(ctx)
	if r.busy.outwaited(client.ObjectKeyFromObject(rs.obj), r.Clock.Now(), r.lookPatience()) {
		log.FromContext(ctx).V(1).Info("Looks turned away by the busy account for too long; waiting ahead of its queue",
			"patience", r.lookPatience())
		var release func()
		ctx, release = twilio.AheadOfQueue(ctx)
		defer release()
		lookCtx = ctx
	}
	obs, err := r.look(lookCtx, rs, api, &led, want)
	if err != nil {
		return nil, err
	}
	wait := time.Duration(0)
	if p := led.pending; p != nil && obs.recovered == nil {
		wait = r.inFlightFor(p)
		obs.pendingInFlight = wait > 0
	}
	for range maxSteps {
		st := plan(want, &obs, &led, rs.flush != nil || led.metaInSync(rs.obj))
		switch st.kind {
		case stepWait:
			return nil, &waitError{after: wait}
		case stepNone:
			recordWebhook(&rs.obj.Status, obs.current, led.replay.value)
			return obs.current, nil
		case stepReport:
			return r.report(rs, want, &led, obs.current), nil
		}
		if obs, err = r.act(ctx, rs, api, want, &led, obs, st); err != nil {
			return nil, err
		}
	}
	return nil, inPhase(v1alpha1.ReasonUpdating, errNotConverged)
}

// look applies the answer of a create dispatched for the object, if any;
// otherwise it observes Twilio, with ctx as sync marked it for a busy account.
func (r *ConversationWebhookReconciler) look(ctx context.Context, rs *reconcileState, api twilio.WebhookAPI, led *ledger,
	want desired) (observation, error) {
	if obs, applied, err := r.resumeCreate(ctx, rs, led); applied || err != nil {
		return obs, err
	}
	obs, err := r.observe(ctx, rs.obj, api, led, want)
	if err != nil && !twilio.IsAccountBusy(err) {
		err = inPhase(phaseOfLedger(led), err)
	}
	return obs, err
}

// report (managementPolicy Observe) records what Twilio holds and how it
// differs from the spec, in the Synced condition.
func (r *ConversationWebhookReconciler) report(rs *reconcileState, want desired, led *ledger, wh *twilio.Webhook) *twilio.Webhook {
	if wh == nil {
		return nil
	}
	recordWebhook(&rs.obj.Status, wh, led.replay.value)
	setSynced(&rs.obj.Status, rs.obj.Generation, driftOf(want, wh, led.owned.scope, led.replay))
	return wh
}

// act carries out one step.
func (r *ConversationWebhookReconciler) act(ctx context.Context, rs *reconcileState, api twilio.WebhookAPI, want desired,
	led *ledger, obs observation, st step) (observation, error) {
	if st.kind != stepAnnotate && st.kind != stepRecord {
		// Twilio is written to next: what was recorded in memory goes first.
		if err := r.flushRecord(ctx, rs); err != nil {
			return obs, inPhase(phaseOfLedger(led), err)
		}
	}
	if phase, msg := st.progress(led); phase != "" && st.kind != stepCreate {
		// Status written while the step runs says what is under way, not
		// Ready (a create says so once its place in the queue is taken).
		setProgressing(&rs.obj.Status, rs.obj.Generation, phase, msg)
	}
	switch st.kind {
	case stepCreate:
		return r.create(ctx, rs, api, want, led, obs, st)
	case stepRecord:
		rs.took = true
		err := r.record(ctx, rs, led, st.webhook, st.supersede, nil, st.why)
		return observation{current: st.webhook}, inPhase(v1alpha1.ReasonCreating, err)
	case stepUpdate:
		return r.update(ctx, rs, api, want, led, obs)
	case stepAnnotate:
		r.warnAnnotations(rs.obj, led, st)
		rs.flush = led // written with the reconcile's status
		return obs, nil
	case stepDeleteSuperseded:
		return obs, inPhase(v1alpha1.ReasonReplacing, r.deleteSuperseded(ctx, rs, api, led))
	default: // stepStall
		if st.why == v1alpha1.ReasonSidConflict {
			return obs, sidConflictError(led.claimedOrOwned(), st.detail)
		}
		return obs, stalled(st.why, errors.New(st.detail))
	}
}

// progress is the Ready reason and message while a step that writes to Twilio runs.
func (st step) progress(led *ledger) (string, string) {
	switch {
	case st.kind == stepCreate && st.why == whyReplace:
		return v1alpha1.ReasonReplacing, "Replacing the webhook: " + st.detail
	case st.kind == stepCreate:
		return v1alpha1.ReasonCreating, "Creating the webhook"
	case st.kind == stepRecord:
		return v1alpha1.ReasonCreating, "Recording webhook " + st.webhook.Sid
	case st.kind == stepUpdate:
		return v1alpha1.ReasonUpdating, "Updating the webhook: " + st.detail
	case st.kind == stepDeleteSuperseded:
		return v1alpha1.ReasonReplacing, "Deleting superseded webhook " + led.superseded.sid
	}
	return "", ""
}

// claimedOrOwned is the SID a conflict is about.
func (led *ledger) claimedOrOwned() string {
	if c := led.claimed(); c != "" {
		return c
	}
	if led.owned != nil {
		return led.owned.sid
	}
	return ""
}

// phaseOfLedger is the Ready reason of a failure before any step.
func phaseOfLedger(led *ledger) string {
	if led.owned == nil {
		return v1alpha1.ReasonCreating
	}
	return v1alpha1.ReasonUpdating
}

// create records the pending create (with an optimistic lock, so a stale view
// never creates), creates the webhook, and records it. With a dispatcher the
// create is sent off the worker (see createDispatcher) and recorded by the
// reconcile its answer wakes; the account's queue is reserved first, so a
// pending record is never written for a create that cannot be sent soon.
func (r *ConversationWebhookReconciler) create(ctx context.Context, rs *reconcileState, api twilio.WebhookAPI, want desired,
	led *ledger, obs observation, st step) (observation, error) {
	release, err := r.reserve(rs)
	if err != nil {
		return obs, err
	}
	if phase, msg := st.progress(led); phase != "" {
		setProgressing(&rs.obj.Status, rs.obj.Generation, phase, msg)
	}
	if led.pending != nil {
		r.warnUnknown(rs.obj, led.pending.scope, obs.unknown, "creating another")
	}
	led.pending = &pendingRecord{since: r.Clock.Now().UTC().Truncate(time.Second), scope: want.scope,
		fingerprint: fingerprint(want.target, want.cfg), account: api.AccountSid(), recorded: true}
	job := &dispatchedCreate{pending: *led.pending, st: st, currentGone: obs.currentGone, replayAfter: want.cfg.ReplayAfter,
		generation: rs.obj.Generation}
	if err := r.commit(ctx, rs, led, true); err != nil {
		release()
		return obs, inPhase(job.phase(), err)
	}
	job.writtenRV = rs.obj.ResourceVersion
	input := twilio.CreateWebhookInput{Target: want.target, Configuration: want.cfg}
	// The create must end while others would still wait for it (PendingGrace
	// from the pending stamp): it is not sent once its window to start passed.
	since := led.pending.since
	if r.creates != nil {
		r.creates.start(rs.obj, job, release, func(ctx context.Context) (*twilio.Webhook, error) {
			return api.CreateWebhook(r.sendBy(ctx, since), want.scope, input)
		})
		return obs, errCreateSent
	}
	wh, err := api.CreateWebhook(r.sendBy(ctx, since), want.scope, input)
	return r.created(ctx, rs, led, job, wh, err)
}

// reserve takes a place in the account's create queue (a no-op without a
// dispatcher). An object that finds it full is parked first, then tries once
// more, so that a place freed in between is not missed.
func (r *ConversationWebhookReconciler) reserve(rs *reconcileState) (func(), error) {
	if r.creates == nil {
		return func() {}, nil
	}
	key := client.ObjectKeyFromObject(rs.obj)
	reserved, ok := r.Twilio.Reserve(rs.account)
	if !ok {
		r.creates.park(rs.account, key)
		if reserved, ok = r.Twilio.Reserve(rs.account); !ok {
			return nil, errQueueFull
		}
	}
	r.creates.unpark(rs.account, key)
	return r.creates.releaser(rs.account, reserved, r.Twilio.Reservable), nil
}

// sendBy marks a create's context with the time by which it must start: its
// pending stamp plus SendWindow (default PendingGrace/2). Without a
// PendingGrace (no other manager is waited for) there is no such time.
func (r *ConversationWebhookReconciler) sendBy(ctx context.Context, since time.Time) context.Context {
	window := r.SendWindow
	if window <= 0 {
		window = r.PendingGrace / 2
	}
	if window <= 0 {
		return ctx
	}
	return twilio.WithSendBy(ctx, since.Add(window))
}

// errQueueFull says the account's create queue is full (see
// twilio.Factory.Reserve): the object waits, parked, for a place, without a
// worker and without writing anything.
var errQueueFull = fmt.Errorf("%w: its queue of creates is full", twilio.ErrAccountBusy)

// errCreateSent says the create was handed to the dispatcher (or is still
// there): its answer wakes the object.
var errCreateSent = errors.New("create sent; waiting for Twilio's answer")

// errStaleView says the cache does not show an answered create's pending
// record yet, or still shows one whose refusal status records: reconcile again
// in a moment.
var errStaleView = errors.New("the cache does not show the pending create, or its refusal, yet")

// staleViewError is errStaleView with when to look again: in 100 ms at first,
// then after a tenth of the time the answer has waited, up to a second. The
// watch event of the pending record wakes the object anyway (seenHandler);
// this is a safety net, and one that does not spin while a lagging cache
// catches up.
type staleViewError struct{ after time.Duration }

func staleView(since time.Time) error {
	return &staleViewError{after: min(max(time.Since(since)/10, 100*time.Millisecond), time.Second)}
}

func (e *staleViewError) Error() string { return errStaleView.Error() }
func (e *staleViewError) Unwrap() error { return errStaleView }

func (j *dispatchedCreate) phase() string {
	if j.st.why == whyReplace {
		return v1alpha1.ReasonReplacing
	}
	return v1alpha1.ReasonCreating
}

// resumeCreate applies the answer of a create this manager dispatched for the
// object (applied true): errCreateSent while it is not answered yet; nothing
// when there is none, or when status no longer records it as pending (then the
// pending record, if any, is resolved by listing, as after a lost answer).
func (r *ConversationWebhookReconciler) resumeCreate(ctx context.Context, rs *reconcileState, led *ledger) (observation, bool, error) {
	job := r.creates.peek(rs.obj.UID)
	switch {
	case job == nil:
		return observation{}, false, nil
	case !job.done:
		return observation{}, false, errCreateSent
	case !job.appliedAt.IsZero():
		// Status records the answer. A view that still shows the pending
		// record is older than that write: wait for the cache, rather than
		// look for the create's webhook by listing.
		if job.matches(led.pending) && awaitsView(rs.obj.ResourceVersion, job.appliedRV, job.appliedAt) {
			return observation{}, false, staleView(job.appliedAt)
		}
		r.creates.forget(rs.obj.UID)
		return observation{}, false, nil
	case (!job.matches(led.pending) || !led.metaInSync(rs.obj)) && awaitsView(rs.obj.ResourceVersion, job.writtenRV, job.doneAt):
		// The wake overtook the watch events of the pending record (a cache
		// that lags by more than staleViewWait included): the watch's view
		// of it wakes the object.
		r.creates.awaitView(rs.obj.UID, true)
		return observation{}, false, staleView(job.doneAt)
	}
	if !job.matches(led.pending) {
		r.creates.forget(rs.obj.UID)
		return observation{}, false, nil
	}
	r.creates.awaitView(rs.obj.UID, false)
	obs, err := r.created(ctx, rs, led, job, job.wh, job.err)
	switch {
	case rs.flush != nil && err == nil:
		// Its webhook stays among the dispatcher's unapplied answers, which no
		// other object's look takes, until status records it (flushRecord).
		rs.answered = true
	case refusal(job.err) && rs.base.Status.PendingCreate == nil:
		// A refusal that status records (the write succeeded): kept until
		// the view shows it.
		r.creates.applied(rs.obj.UID, rs.obj.ResourceVersion)
	case refusal(job.err):
		// Status could not record it (a conflict with a newer view, say):
		// kept, and applied again on the next view that shows the pending
		// record, rather than that record taken for a lost create.
	default:
		r.creates.forget(rs.obj.UID)
	}
	if job.generation != rs.obj.Generation {
		// The spec changed while the create was in flight: the answer is
		// compared with the new spec as any webhook is (an update), not as the
		// answer to what was sent.
		obs.answer = ""
	}
	return obs, true, err
}

// created records a create's answer. 429 and 4xx answers drop the pending
// record (Twilio created nothing); a timeout, a connection error, a 5xx or an
// unusable answer keep it for the next reconcile to resolve by listing.
func (r *ConversationWebhookReconciler) created(ctx context.Context, rs *reconcileState, led *ledger, job *dispatchedCreate,
	wh *twilio.Webhook, err error) (observation, error) {
	scope, phase, st := job.pending.scope, job.phase(), job.st
	if err != nil {
		if refusal(err) {
			led.pending = nil
			err = errors.Join(err, r.commit(ctx, rs, led, false))
		}
		if job.generation != rs.obj.Generation && !twilio.IsRetryable(err) {
			// Refused for a spec that has changed since: not this spec's
			// failure. Retried (as a transient failure) for the current one.
			return observation{}, inPhase(phase, fmt.Errorf("the create sent for generation %d was refused (%s); creating for the current spec",
				job.generation, err.Error()))
		}
		if twilio.IsConversationNotFound(err) {
			err = stalled(v1alpha1.ReasonConversationNotFound, err)
		}
		return observation{}, inPhase(phase, err)
	}
	fillScope(wh, scope, job.pending.account)
	supersede := st.supersede && led.owned != nil && !job.currentGone
	if err := r.record(ctx, rs, led, wh, supersede, job.replayAfter, ""); err != nil {
		return observation{}, inPhase(phase, fmt.Errorf("recording created webhook %s: %w", wh.Sid, err))
	}
	switch st.why {
	case whyRecreate:
		r.Metrics.driftCorrected(DriftRecreate)
		r.event(rs.obj, EventRecreated, "Create", "Created webhook %s in %s (webhook %s was not found in Twilio)", wh.Sid, scope, st.detail)
	case whyReplace:
		r.event(rs.obj, EventCreated, "Create", "Created webhook %s in %s to replace the old one (%s)", wh.Sid, scope, st.detail)
	default:
		r.event(rs.obj, EventCreated, "Create", "Created webhook %s in %s", wh.Sid, scope)
	}
	return observation{current: wh, answer: answerCreate}, nil
}

// refusal says a create's answer proves Twilio created nothing: a 429, a 4xx,
// or a create never sent.
func refusal(err error) bool {
	return err != nil && (twilio.IsRateLimited(err) || twilio.IsTerminal(err) || twilio.IsNotSent(err))
}

// record makes wh the managed webhook: status first (the operator's record,
// with the webhook it supersedes), then the annotations that mirror it.
func (r *ConversationWebhookReconciler) record(ctx context.Context, rs *reconcileState, led *ledger, wh *twilio.Webhook,
	supersede bool, sentReplay *int32, why string) error {
	if supersede && led.owned != nil && led.owned.sid != wh.Sid {
		// A webhook another object records (this one lost a conflict over it)
		// is that object's: let go of it, never delete it.
		other, err := r.conflict(ctx, rs.obj, led.owned.sid, true)
		if err != nil {
			return err
		}
		if other == "" {
			led.superseded = led.owned
		}
	}
	if twilio.CanonicalSid(rs.obj.Status.Sid) != wh.Sid {
		rs.obj.Status.Configuration = nil // what was recorded belongs to another webhook
	}
	recordWebhook(&rs.obj.Status, wh, sentReplay)
	led.owned = &ref{sid: wh.Sid, scope: twilio.Scope{ServiceSid: wh.ServiceSid, ConversationSid: wh.ConversationSid}}
	led.replay = recordedReplay{value: rs.obj.Status.Configuration.ReplayAfter, known: true}
	led.pending = nil
	// Written before the next Twilio write, or with the reconcile's conditions.
	rs.flush = led
	switch why {
	case whyRecover:
		r.event(rs.obj, EventAdopted, "Adopt", "Recovered webhook %s, created by an earlier attempt whose answer was lost", wh.Sid)
	case whyAdopt:
		r.event(rs.obj, EventAdopted, "Adopt", "Adopted existing webhook %s named by the %s annotation", wh.Sid, v1alpha1.AnnotationWebhookSid)
	case whyMatch:
		r.event(rs.obj, EventAdopted, "Adopt", "Observing existing webhook %s: it matches the spec and no other object claims it", wh.Sid)
	}
	return nil
}

// update brings the managed webhook's configuration to the spec. A 404 from
// Twilio (deleted since the fetch) makes the next step recreate it.
func (r *ConversationWebhookReconciler) update(ctx context.Context, rs *reconcileState, api twilio.WebhookAPI, want desired,
	led *ledger, obs observation) (observation, error) {
	sid := led.owned.sid
	recorded := rs.obj.Status.Configuration
	drift := twilio.CanonicalSid(rs.obj.Status.Sid) == sid && recorded != nil && len(configDiffs(recordedConfig(recorded), obs.current)) > 0
	wh, err := api.UpdateWebhook(ctx, led.owned.scope, sid, want.cfg)
	switch {
	case twilio.IsNotFound(err):
		return observation{currentGone: true}, nil
	case err != nil:
		return obs, inPhase(v1alpha1.ReasonUpdating, err)
	}
	fillScope(wh, led.owned.scope, api.AccountSid())
	if drift {
		r.Metrics.driftCorrected(DriftUpdate)
		r.event(rs.obj, EventDriftCorrected, "Update", "Restored webhook %s, changed outside the operator, to the spec", sid)
	} else {
		r.event(rs.obj, EventUpdated, "Update", "Updated webhook %s to the spec", sid)
	}
	return observation{current: wh, answer: answerUpdate}, nil
}

func recordedConfig(c *v1alpha1.WebhookConfiguration) twilio.Configuration {
	return twilio.Configuration{URL: c.URL, Method: c.Method, Filters: c.Filters, Triggers: c.Triggers, FlowSid: c.FlowSid}
}

// deleteSuperseded deletes the webhook a replacement or an adoption
// superseded, then forgets it. Gone already counts as done.
func (r *ConversationWebhookReconciler) deleteSuperseded(ctx context.Context, rs *reconcileState, api twilio.WebhookAPI, led *ledger) error {
	old := led.superseded
	other, err := r.conflict(ctx, rs.obj, old.sid, true)
	if err != nil {
		return err
	}
	if other != "" {
		// Another object took it since (adopted it): it is not ours to delete.
		led.superseded = nil
		return r.commit(ctx, rs, led, false)
	}
	if err := api.DeleteWebhook(ctx, old.scope, old.sid); err != nil && !gone(err) {
		return err
	}
	led.superseded = nil
	if err := r.commit(ctx, rs, led, false); err != nil {
		return err
	}
	r.event(rs.obj, EventReplaced, "Replace", "Replaced webhook %s with %s; deleted %s", old.sid, led.owned.sid, old.sid)
	return nil
}

// commit writes the ledger back: status first (the operator's own record,
// always under the object's resourceVersion: it fails on a stale view; lock
// forces the write even when status did not change), then the annotations that
// mirror it and the finalizer, which guards anything that may exist in Twilio.
func (r *ConversationWebhookReconciler) commit(ctx context.Context, rs *reconcileState, led *ledger, lock bool) error {
	obj := rs.obj
	writeRecord(&obj.Status, led)
	if lock || !equality.Semantic.DeepEqual(rs.base.Status, obj.Status) {
		if err := r.writeStatus(ctx, rs); err != nil {
			return err
		}
	}
	return r.writeMeta(ctx, rs, led)
}

// warnAnnotations reports annotations the operator does not obey.
func (r *ConversationWebhookReconciler) warnAnnotations(obj *v1alpha1.ConversationWebhook, led *ledger, st step) {
	if st.why == whyStaleSid {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventStaleWebhookSid, "Annotate",
			"The %s annotation names webhook %s, which does not exist in Twilio; kept managing webhook %s and rewrote the annotation. "+
				"Update the value kept in Git", v1alpha1.AnnotationWebhookSid, st.detail, led.owned.sid)
	}
	for _, k := range led.legacy {
		v := echo(obj.Annotations[k], maxEcho)
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventLegacyAnnotation, "Annotate",
			"Removed annotation %s=%q written by an earlier version; it is not obeyed. If it names a webhook nothing uses, delete that by hand",
			k, v)
	}
}

// warnUnknown names the webhooks findCreated could not rule out as the result of
// a lost create; the operator leaves them in Twilio.
func (r *ConversationWebhookReconciler) warnUnknown(obj *v1alpha1.ConversationWebhook, scope twilio.Scope, unknown []string, doing string) {
	if len(unknown) == 0 {
		return
	}
	r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventPossibleOrphan, "Recover",
		"The webhook of an earlier create whose answer was lost was not found (%s). Webhook(s) %s in %s were created since, "+
			"belong to no ConversationWebhook and do not match what was sent: if one was that create's, changed outside the operator "+
			"before its SID was recorded, delete it by hand", doing, strings.Join(unknown, ", "), scope)
}

// gone says a webhook no longer exists: Twilio says it, or its conversation, is not found.
func gone(err error) bool {
	return twilio.IsNotFound(err) || twilio.IsConversationNotFound(err)
}

func (r *ConversationWebhookReconciler) event(obj *v1alpha1.ConversationWebhook, reason, action, note string, args ...interface{}) {
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, reason, action, note, args...)
}
