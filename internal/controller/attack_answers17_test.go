package controller

// Attack review 17, controller side: how a Twilio answer (or one from a proxy
// or impostor answering for Twilio) is consumed. Plain unit tests on the step
// fixture (no envtest): run with -skip TestController.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// a17API is webhookAPIFns acting for another account SID.
type a17API struct {
	*webhookAPIFns
	account string
}

func (a a17API) AccountSid() string { return a.account }

// a17Matching is planOwned as the spec of stepFixture wants it.
func a17Matching() *twilio.Webhook {
	return &twilio.Webhook{Sid: planOwned, AccountSid: "AC00000000000000000000000000000001", ConversationSid: planConv,
		Target: "webhook", Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}}
}

// TestAttack17FetchAnswerOfAnotherConversationIsNotRecorded: the owned
// webhook (planOwned in planConv) is fetched at
// /v1/Conversations/planConv/Webhooks/planOwned and the answer says
// "conversation_sid": planConv2 (the client does not compare it with the
// request: see twilio.TestAttack17FetchAnswerMustBeTheWebhookAsked).
//
// Before the fix: the plan compares the recorded scope, not the answered one, so the
// step is None, sync returns no error (Reconcile sets Ready=True, "matches the
// spec"), and recordWebhook writes status.conversationSid = planConv2. The
// next reconcile reads its record from status (readRecord) and fetches
// planConv2/planOwned: Twilio answers 404/20404, so plan recreates (a second
// webhook in planConv; the first is orphaned). A deletion instead deletes
// planConv2/planOwned, counts Twilio's 404 as done (gone), emits "Deleted
// webhook planOwned" and removes the finalizer: the webhook stays in Twilio.
// The same holds for a create's or a list's answer (created and findCreated
// keep an answered conversation_sid; fillScope fills only an empty one).
func TestAttack17FetchAnswerOfAnotherConversationIsNotRecorded(t *testing.T) {
	r, rs, want, _ := stepFixture(t)
	var fetchedIn []string
	api := &webhookAPIFns{t: t, fetch: func(s twilio.Scope, sid string) (*twilio.Webhook, error) {
		fetchedIn = append(fetchedIn, s.ConversationSid)
		wh := a17Matching()
		wh.ConversationSid = planConv2
		return wh, nil
	}}
	_, err := r.sync(t.Context(), rs, api)
	if len(fetchedIn) != 1 || fetchedIn[0] != planConv {
		t.Fatalf("fetched in %v, want one fetch in %s", fetchedIn, planConv)
	}
	if err == nil && rs.obj.Status.ConversationSid != planConv {
		t.Errorf("an answer naming %s for a fetch in %s: sync succeeded (Ready=True) and status.conversationSid is now %s",
			planConv2, planConv, rs.obj.Status.ConversationSid)
	}
	next, rerr := readRecord(&rs.obj.Status, want.scope)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if next.owned == nil || next.owned.scope.ConversationSid != planConv {
		t.Fatalf("the next reconcile and the deletion act on %+v: Twilio answers 404 there, so the operator recreates "+
			"(duplicate) or counts the deletion done (orphan)", next.owned)
	}
}

// TestAttack17FetchAnswerOfAnotherAccountIsNotRecorded: the fetch, made with
// the account's verified credentials, is answered with another account_sid.
//
// Before the fix, recordWebhook writes it into status.accountSid (ownAccount fills only
// an empty one) while sync succeeds (Ready=True). From the next reconcile on,
// accountChanged finds status.accountSid differing from the account's verified
// SID: Stalled/AccountChanged (a reason not polled again), and a deletion
// orphans the webhook (twilioFor fails terminally in deleteTargets, and
// deleteExternal leaves webhooks on terminal errors, removing the finalizer).
//
// Another account altogether is refused by the client, before an answer
// reaches the reconciler (twilio.TestAttack17FetchAnswerMustBeTheWebhookAsked).
// The case here is a guess at a real-world shape, not a hostile one: the
// same account SID with its hex digits in another case than the verified one
// (accountChanged compares exactly; webhook SIDs are compared canonically
// everywhere). Twilio is not known to do this.
func TestAttack17FetchAnswerOfAnotherAccountIsNotRecorded(t *testing.T) {
	cases := []struct{ name, acting, answered string }{
		{"same account, hex in other case (guess)", "ACabcdef00000000000000000000000001", "ACABCDEF00000000000000000000000001"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, rs, _, _ := stepFixture(t)
			api := a17API{account: tc.acting, webhookAPIFns: &webhookAPIFns{t: t, fetch: func(twilio.Scope, string) (*twilio.Webhook, error) {
				wh := a17Matching()
				wh.AccountSid = tc.answered
				return wh, nil
			}}}
			if _, err := r.sync(t.Context(), rs, api); err != nil {
				t.Fatalf("sync: %v; the same account in another case is the acting one, not a failure", err)
			}
			if rs.obj.Status.AccountSid != tc.acting {
				t.Errorf("status.accountSid %q, want the acting account's spelling %q", rs.obj.Status.AccountSid, tc.acting)
			}
			if changed := accountChanged(&rs.obj.Status, &resolvedAccount{key: "default", accountSid: tc.acting}); changed != nil {
				t.Fatalf("sync succeeded (Ready=True), and from the next reconcile on the object is stuck, its deletion orphaning "+
					"the webhook: status.accountSid %q, %v", rs.obj.Status.AccountSid, changed)
			}
		})
	}
}

// TestAttack17EmptyFetchAnswerIsNotReady: a fetch answered 200 {} (a stub or a
// proxy answering every GET with an empty object), read by the real client.
// Before the fix, sync returns it as the current webhook with no error, so Reconcile
// sets Ready=True "Webhook … matches the spec", though the answer says nothing
// of target or configuration, and recordWebhook erases status.target and
// status.configuration. Drift is never detected while such answers last.
func TestAttack17EmptyFetchAnswerIsNotReady(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	f, err := twilio.NewFactory(twilio.Options{BaseURL: srv.URL, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	api, err := f.For(twilio.Credentials{AccountSid: "AC00000000000000000000000000000001", AuthToken: "tokenSECRET1"})
	if err != nil {
		t.Fatal(err)
	}
	r, rs, _, _ := stepFixture(t)
	rs.obj.Status.Target = "webhook"
	rs.obj.Status.Configuration = &v1alpha1.WebhookConfiguration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}
	wh, err := r.sync(t.Context(), rs, api)
	if err == nil {
		t.Fatalf("a {} answer made sync succeed (Ready=True, matches the spec) with webhook %+v (absent %v); status now target %q configuration %+v",
			wh, wh.Absent(), rs.obj.Status.Target, rs.obj.Status.Configuration)
	}
}

// TestAttack17LongServerMessageFitsTheConditions: Twilio's (or an impostor's)
// error message, read by the real client, reaches the Stalled and Ready
// conditions whole. The CRD bounds a condition message at 32768 bytes (and the
// API server an event note at 1024): the status patch of such a reconcile is
// refused, every time, and the object keeps its previous conditions, for an
// object that was Ready, Ready=True "matches the spec" while Twilio refuses it.
// The account reconciler's terminal branch (setAccountReady(…, err.Error()))
// has the same flaw for a refused credential.
func TestAttack17LongServerMessageFitsTheConditions(t *testing.T) {
	f := a17LongErrorFactory(t, http.StatusBadRequest, 50366)
	api, err := f.For(twilio.Credentials{AccountSid: "AC00000000000000000000000000000001", AuthToken: "tokenSECRET1"})
	if err != nil {
		t.Fatal(err)
	}
	r, rs, _, _ := stepFixture(t)
	r.SyncPeriod = time.Minute
	_, err = r.sync(t.Context(), rs, api)
	if err == nil {
		t.Fatal("a 400 answer made sync succeed")
	}
	if _, ferr := r.failed(t.Context(), rs.obj, v1alpha1.ReasonUpdating, err); ferr != nil {
		t.Fatalf("failed: %v", ferr)
	}
	for _, c := range rs.obj.Status.Conditions {
		if len(c.Message) > 32768 {
			t.Errorf("condition %s message of %d bytes: the CRD allows 32768, the status write is refused and the old conditions stay",
				c.Type, len(c.Message))
		}
	}
	if ready := meta.FindStatusCondition(rs.obj.Status.Conditions, v1alpha1.ConditionReady); ready == nil {
		t.Fatal("no Ready condition")
	}
}

// TestAttack17AccountRefusalMessageFitsItsCondition: the account check (GET
// /v1/Configuration, through the real client) answered 401 with Twilio's
// error JSON and a 40000-byte message. The account reconciler's terminal
// branch writes err.Error() whole into the account's Ready message (its
// transient branch cuts with echo(…, maxAccountEcho)). The API server refuses
// that status write (condition message maxLength 32768), on every retry: the
// account stays Ready=True/Verified, its webhooks keep acting with a key
// Twilio refuses, and nobody is told why.
func TestAttack17AccountRefusalMessageFitsItsCondition(t *testing.T) {
	f := a17LongErrorFactory(t, http.StatusUnauthorized, 20003)
	acct := attackAccount("acc", 0)
	c := attackClient(t, acct)
	ar := &AccountReconciler{Client: c, APIReader: c, Verifier: f}
	if _, err := ar.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(acct)}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	got := &v1alpha1.TwilioAccount{}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(acct), got); err != nil {
		t.Fatal(err)
	}
	ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != "False" {
		t.Fatalf("Ready = %+v, want False for a refused credential", ready)
	}
	if len(ready.Message) > 32768 {
		t.Fatalf("the account's Ready message is %d bytes: over the CRD's 32768, the status write is refused and the account stays Ready=True",
			len(ready.Message))
	}
}

// TestAttack17SameSecretAnotherAccountIsNotTaken: the account was verified for
// attackSidA with the Secret at its current resourceVersion; the next check
// (GET /v1/Configuration, answered by an impostor or a misrouted proxy) says
// account_sid attackSidB for the very same credentials, which Twilio cannot
// answer (a credential belongs to one account). Before the fix the account took it at
// once (acc.status.AccountSid = sid): every ConversationWebhook of the account
// whose status records attackSidA is then Stalled/AccountChanged (not polled),
// and any deletion in that window orphans its webhook (accountChanged is
// terminal in deleteTargets; deleteExternal leaves webhooks and removes the
// finalizer). One answer should not move an account whose Secret did not change.
func TestAttack17SameSecretAnotherAccountIsNotTaken(t *testing.T) {
	acct := attackAccount("acc", 0)
	c := attackClient(t, acct)
	ar := &AccountReconciler{Client: c, APIReader: c, Verifier: &fixedVerifier{attackSidB}}
	_, _ = ar.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(acct)})
	got := &v1alpha1.TwilioAccount{}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(acct), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.AccountSid != attackSidA {
		hook := &v1alpha1.ConversationWebhookStatus{Sid: planOwned, AccountSid: attackSidA}
		t.Fatalf("unchanged Secret (version %s) re-verified as %s: %v", got.Status.VerifiedSecretVersion, got.Status.AccountSid,
			accountChanged(hook, &resolvedAccount{key: "team/acc", accountSid: got.Status.AccountSid}))
	}
}

// a17LongErrorFactory is a client factory for a server that answers every
// request with status and Twilio's error JSON for code, its message 40000 bytes.
func a17LongErrorFactory(t *testing.T, status, code int) *twilio.Factory {
	t.Helper()
	long := strings.Repeat("x", 40000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"code":%d,"message":"%s","status":%d}`, code, long, status)
	}))
	t.Cleanup(srv.Close)
	f, err := twilio.NewFactory(twilio.Options{BaseURL: srv.URL, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return f
}
