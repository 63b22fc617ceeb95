package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// statusReg holds the status gauges of the running manager: a fresh registry
// each time startManager runs, so that a restarted manager registers again.
var statusReg *prometheus.Registry

// setupStatusMetrics wires the status gauges into mgr, as cmd/manager does.
func setupStatusMetrics(mgr manager.Manager) {
	GinkgoHelper()
	statusReg = prometheus.NewRegistry()
	Expect(NewStatusMetrics(mgr.GetClient(), statusReg).SetupWithManager(mgr)).To(Succeed())
}

// statusSeries returns the status gauges of one object, as
// `metric{label=value,...}` → value, labels sorted, namespace and name left out.
func statusSeries(o client.Object) map[string]float64 {
	GinkgoHelper()
	families, err := statusReg.Gather()
	Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var ns, name string
			var rest []string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "namespace":
					ns = l.GetValue()
				case "name":
					name = l.GetValue()
				default:
					rest = append(rest, l.GetName()+"="+l.GetValue())
				}
			}
			if ns != o.GetNamespace() || name != o.GetName() {
				continue
			}
			sort.Strings(rest)
			out[fmt.Sprintf("%s{%s}", f.GetName(), strings.Join(rest, ","))] = m.GetGauge().GetValue()
		}
	}
	return out
}

// statusGauges is what statusSeries returns for an object whose Ready,
// Reconciling and Stalled conditions have these statuses, Stalled=True with
// stalledReason when it is not empty.
func statusGauges(ready, reconciling, stalled, stalledReason string) map[string]float64 {
	out := map[string]float64{}
	for cond, current := range map[string]string{"Ready": ready, "Reconciling": reconciling, "Stalled": stalled} {
		for _, s := range []string{"True", "False", "Unknown"} {
			v := 0.0
			if s == current {
				v = 1
			}
			out[fmt.Sprintf("conversationwebhook_status_condition{condition=%s,status=%s}", cond, s)] = v
		}
	}
	if stalledReason != "" {
		out["conversationwebhook_stalled_reason{reason="+stalledReason+"}"] = 1
	}
	return out
}

var _ = Describe("status metrics", func() {
	ctx := context.Background()

	It("follow an object through Ready, Stalled, Ready again and deletion", func() {
		t := newTenant(1)
		o := t.object("gauged")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		waitReady(o)
		eventually := func(want map[string]float64) {
			GinkgoHelper()
			Eventually(func() map[string]float64 { return statusSeries(o) }).
				WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(want))
		}
		eventually(statusGauges("True", "False", "False", ""))

		By("its conversation removed from Twilio, then its spec edited: Stalled")
		fake.RemoveConversation(t.convs[0])
		editURL(o, "https://hooks.example.com/gauged-2")
		waitStalled(o, v1alpha1.ReasonConversationNotFound)
		eventually(statusGauges("False", "False", "True", v1alpha1.ReasonConversationNotFound))

		By("the conversation back and the spec edited again: Ready, the stalled reason gone")
		fake.AddConversation(testAccount, t.convs[0])
		editURL(o, "https://hooks.example.com/gauged-3")
		waitReady(o)
		eventually(statusGauges("True", "False", "False", ""))

		By("deleted: every series of the object gone")
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		eventually(map[string]float64{})
	})

	It("labels no SID, URL or secret", func() {
		families, err := statusReg.Gather()
		Expect(err).NotTo(HaveOccurred())
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					Expect(l.GetName()).To(BeElementOf("namespace", "name", "condition", "status", "reason"))
				}
			}
		}
	})
})

// editURL changes the object's spec.url, a spec edit that makes the
// reconciler act again.
func editURL(o *v1alpha1.ConversationWebhook, url string) {
	GinkgoHelper()
	Eventually(func() error {
		cur := get(o)
		cur.Spec.URL = url
		return k8sClient.Update(context.Background(), cur)
	}).WithTimeout(10 * time.Second).Should(Succeed())
}
