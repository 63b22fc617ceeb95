//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// converged checks the end state: every object Ready at its generation, its
// status and its webhook matching the spec, one webhook per object, and none
// besides them but the foreign ones the test made.
func converged(ctx context.Context, c client.Client, w *world, n int, foreign map[string]bool) error {
	var list v1alpha1.ConversationWebhookList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	if len(list.Items) != n {
		return fmt.Errorf("%d objects, want %d", len(list.Items), n)
	}
	hooks := map[string]twiliofake.Webhook{}
	for _, wh := range w.fake.Webhooks() {
		hooks[wh.Sid] = wh
	}
	owned := map[string]string{}
	for _, o := range list.Items {
		ready := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || o.Status.ObservedGeneration != o.Generation {
			return fmt.Errorf("%s not Ready: %+v", o.Name, o.Status.Conditions)
		}
		wh, ok := hooks[o.Status.Sid]
		if !ok {
			return fmt.Errorf("%s: webhook %s not in Twilio", o.Name, o.Status.Sid)
		}
		if prev, dup := owned[o.Status.Sid]; dup {
			return fmt.Errorf("%s and %s share webhook %s", prev, o.Name, o.Status.Sid)
		}
		owned[o.Status.Sid] = o.Name
		if diff := mismatch(&o, wh, w.service); diff != "" {
			return fmt.Errorf("%s does not match Twilio (%s): spec %+v, webhook %+v", o.Name, diff, o.Spec, wh)
		}
	}
	var extra []string
	for sid := range hooks {
		if _, ok := owned[sid]; !ok && !foreign[sid] {
			extra = append(extra, sid)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("%d webhooks in Twilio for %d objects; not owned: %v", len(hooks), len(owned), extra)
	}
	return nil
}

// mismatch names the first field where an object and its webhook differ.
func mismatch(o *v1alpha1.ConversationWebhook, wh twiliofake.Webhook, service string) string {
	s := o.Spec
	filters := make([]string, 0, len(s.Filters))
	for _, f := range s.Filters {
		filters = append(filters, string(f))
	}
	method := strings.ToLower(string(s.Method))
	if s.Target == v1alpha1.TargetStudio {
		method = ""
	}
	switch {
	case wh.ConversationSid != s.ConversationSid:
		return "conversation"
	case s.ServiceSid == service && wh.ServiceSid != service, s.ServiceSid != service && wh.ServiceSid == service:
		return "service"
	case wh.Target != string(s.Target):
		return "target"
	case wh.URL != s.URL || o.Status.Configuration.URL != s.URL:
		return "url"
	case !strings.EqualFold(wh.Method, method):
		return "method"
	case !slices.Equal(sorted(wh.Filters), sorted(filters)):
		return "filters"
	case !slices.Equal(sorted(wh.Triggers), sorted(s.Triggers)):
		return "triggers"
	case wh.FlowSid != s.FlowSid:
		return "flowSid"
	case !ptr.Equal(intPtr(wh.ReplayAfter), s.ReplayAfter):
		return "replayAfter"
	case o.Annotations[v1alpha1.AnnotationWebhookSid] != wh.Sid:
		return "webhook-sid annotation"
	}
	return ""
}

// leftovers lists bookkeeping annotations left on objects.
func leftovers(ctx context.Context, c client.Client) ([]string, error) {
	var list v1alpha1.ConversationWebhookList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []string
	for _, o := range list.Items {
		for _, k := range []string{annCreatePending, annCreatePendingSpec, annReplacedWebhook} {
			if v, ok := o.Annotations[k]; ok {
				out = append(out, fmt.Sprintf("%s: %s=%q", o.Name, k, v))
			}
		}
	}
	return out, nil
}

// createLedger counts, from the fake's request log, the creates Twilio stored
// for each object, and the webhooks a deleted-first fault removed from each.
type createLedger struct {
	creates      map[int]int
	deletedFirst map[int]int
	badPaths     []string
	refused      int
}

func ledgerOf(reqs []twiliofake.Request, owner map[string]int) createLedger {
	l := createLedger{creates: map[int]int{}, deletedFirst: map[int]int{}}
	made := map[string]int{}
	for _, r := range reqs {
		if !wellFormedPath.MatchString(r.Path) {
			l.badPaths = append(l.badPaths, r.Method+" "+r.Path)
		}
		if r.Code == twiliofake.CodeTooManyWebhooks {
			l.refused++
		}
		if r.Operation != twiliofake.OpCreate || r.Status != 201 {
			continue
		}
		if i, ok := objectOf(r.Form); ok {
			l.creates[i]++
			made[r.WebhookSid] = i
		}
	}
	for _, r := range reqs {
		if r.Fault != twiliofake.FaultDeletedFirst {
			continue
		}
		if m := pathSidRe.FindStringSubmatch(r.Path); m != nil {
			if i, ok := made[m[1]]; ok {
				l.deletedFirst[i]++
			} else if i, ok := owner[m[1]]; ok {
				l.deletedFirst[i]++
			}
		}
	}
	return l
}

// excess lists objects with more creates than allowed (one, plus one per
// replacement the churn caused), and returns the most creates of one object.
func (l createLedger) excess(allowed map[int]int) ([]string, int) {
	var out []string
	most := 0
	for i, got := range l.creates {
		most = max(most, got)
		if limit := allowed[i] + l.deletedFirst[i]; got > limit {
			out = append(out, fmt.Sprintf("%s: %d creates, at most %d allowed", objName(i), got, limit))
		}
	}
	sort.Strings(out)
	return out, most
}

func intPtr(p *int) *int32 {
	if p == nil {
		return nil
	}
	return ptr.To(int32(*p))
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}
