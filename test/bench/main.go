// Command bench is make bench: it runs the real manager against envtest's control
// plane and the Twilio fake with a per-request latency and an account limit (a
// rate and a concurrency cap past which it answers 429/20429), creates N objects
// across N/4 conversations, and reports convergence against the bound the
// account's limits impose, Twilio calls per webhook, 429s, the manager's peak
// RSS and heap, the steady-state fetches per webhook per sync period, and the time to
// re-converge after 10% of the webhooks are deleted behind the operator's back.
// It writes a markdown report and a PNG plot to test/bench/results/.
//
// Two regimes (BENCH_MODE), as Twilio limits an account both ways:
//   - rate (default): the account allows 50 requests/s (burst 10) and 25 in
//     flight; the operator runs with --twilio-rps=47 --max-concurrent-reconciles=50.
//   - concurrency: the account allows 10 requests in flight and no rate limit
//     binds; the operator runs with its default flags, and the account object
//     sets only requestsPerSecond (1000) so that the rate is not the bound.
//     BENCH_CONCURRENCY=5 makes the account's real cap 5 while the operator is
//     configured for 10: its adaptive ceiling has to find the real limit.
//
// Settings (environment): BENCH_N (1000), BENCH_LATENCY (100ms),
// BENCH_ACCOUNT_RPS (50 rate, 0 = off concurrency), BENCH_ACCOUNT_BURST (10),
// BENCH_CONCURRENCY (25 rate, 10 concurrency), BENCH_TWILIO_RPS (47 rate; the
// operator's default otherwise), BENCH_WORKERS (50 rate; the operator's default
// otherwise); BENCH_CONVERGE_ONLY=1 stops after convergence and prints when
// Twilio saw its first and last request, without writing a report;
// BENCH_APISERVER_PROFILE=1 takes a CPU profile of kube-apiserver while converging.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	restclient "k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
	"github.com/twilio-operator/conversation-webhook-operator/test/localenv"
)

// defaultLatency is the fake's answer time unless BENCH_LATENCY says otherwise.
const defaultLatency = 100 * time.Millisecond

const (
	account   = "AC00000000000000000000000000000007"
	keySid    = "SK00000000000000000000000000000007"
	keySecret = "benchKeySecret"
	// accountName names the bench's TwilioAccount and its Secret.
	accountName = "twilio"
	ns          = "bench"
)

// Bench modes.
const (
	modeRate        = "rate"
	modeConcurrency = "concurrency"
	// operatorInFlight is the operator's default --twilio-max-inflight.
	operatorInFlight = 10
	// concurrencyModeRPS is the account object's requestsPerSecond in the
	// concurrency mode: high enough that the rate never binds.
	concurrencyModeRPS = 1000
)

type settings struct {
	mode                                                  string
	n, accountRPS, burst, concurrency, twilioRPS, workers int
	latency, syncPeriod                                   time.Duration
}

// tag names the report: the mode, and the account's real in-flight cap when it
// is not the operator's configured one.
func (s settings) tag() string {
	tag := s.mode
	if s.mode == modeConcurrency && s.concurrency != operatorInFlight {
		tag += fmt.Sprintf("-cap%d", s.concurrency)
	}
	if s.latency != defaultLatency {
		tag += "-" + s.latency.String()
	}
	return tag
}

// operatorRate is the most requests per second the operator can send: its rate
// limit, or its in-flight slots over the latency, whichever is lower.
func (s settings) operatorRate() float64 {
	slots := float64(min(s.concurrency, operatorInFlight)) / s.latency.Seconds()
	if s.mode == modeRate {
		slots = float64(s.concurrency) / s.latency.Seconds()
		return min(float64(s.twilioRPS), slots)
	}
	return slots
}

// envInt reads a setting; 0 is allowed (it turns a limit off).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

func readSettings() (settings, error) {
	s := settings{mode: os.Getenv("BENCH_MODE"), latency: defaultLatency}
	switch s.mode {
	case "", modeRate:
		s.mode = modeRate
		s.accountRPS, s.concurrency = envInt("BENCH_ACCOUNT_RPS", 50), envInt("BENCH_CONCURRENCY", 25)
		s.twilioRPS, s.workers = envInt("BENCH_TWILIO_RPS", 47), envInt("BENCH_WORKERS", 50)
	case modeConcurrency:
		s.accountRPS, s.concurrency = envInt("BENCH_ACCOUNT_RPS", 0), envInt("BENCH_CONCURRENCY", operatorInFlight)
		s.twilioRPS, s.workers = envInt("BENCH_TWILIO_RPS", 0), envInt("BENCH_WORKERS", 0)
	default:
		return s, fmt.Errorf("BENCH_MODE %q: want %s or %s", s.mode, modeRate, modeConcurrency)
	}
	s.n, s.burst = max(envInt("BENCH_N", 1000), 1), envInt("BENCH_ACCOUNT_BURST", 10)
	if v := os.Getenv("BENCH_LATENCY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return s, err
		}
		s.latency = d
	}
	// The sync period keeps the steady state at two thirds of the operator's rate
	// (one fetch per webhook per period), and is at least a minute.
	s.syncPeriod = max(time.Minute, time.Duration(float64(3*s.n)/(2*s.operatorRate()))*time.Second).Round(time.Second)
	return s, nil
}

// managerFlags are the operator's flags: only what the settings change from its
// defaults, besides the sync period and the local addresses.
func (s settings) managerFlags(metricsAddr, probeAddr, pprofAddr string) []string {
	flags := []string{"--sync-period=" + s.syncPeriod.String(), "--metrics-bind-address=" + metricsAddr,
		"--metrics-secure=false", "--health-probe-bind-address=" + probeAddr, "--pprof-bind-address=" + pprofAddr}
	if s.twilioRPS > 0 {
		flags = append(flags, "--twilio-rps="+strconv.Itoa(s.twilioRPS))
	}
	if s.workers > 0 {
		flags = append(flags, "--max-concurrent-reconciles="+strconv.Itoa(s.workers))
	}
	return flags
}

// accountLimits is the bench account's spec.limits: none in the rate mode (the
// operator's flags apply); in the concurrency mode a rate that never binds.
func (s settings) accountLimits() *v1alpha1.AccountLimits {
	if s.mode != modeConcurrency || s.twilioRPS > 0 {
		return nil
	}
	rps := int32(concurrencyModeRPS)
	return &v1alpha1.AccountLimits{RequestsPerSecond: &rps}
}

// scrapeEvery is how often the bench reads the manager's /metrics: once a
// second up to N=2,000, then less often (5 s at N=10,000), so that the
// rendering of N × 9 status series does not become the manager's main work.
func (s settings) scrapeEvery() time.Duration {
	return max(time.Second, time.Duration(s.n)*time.Second/2000)
}

// createRate paces the bench's creates at twice the account's bound, so the
// operator always has work waiting.
func (s settings) createRate() int {
	perSecond := float64(s.concurrency) / s.latency.Seconds()
	if s.accountRPS > 0 {
		perSecond = min(perSecond, float64(s.accountRPS))
	}
	return max(int(2*perSecond), 1)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	s, err := readSettings()
	if err != nil {
		return err
	}

	fake := twiliofake.New()
	fake.AddAccount(account, "benchAuthToken")
	fake.AddAPIKey(account, keySid, keySecret)
	fake.SetAnyConversation(true)
	fake.SetRecordRequests(os.Getenv("BENCH_CONVERGE_ONLY") == "1")
	fake.SetLatency(s.latency)
	fake.SetMaxInFlight(s.concurrency)
	fake.SetAccountRate(float64(s.accountRPS), s.burst, 0)

	root, _ := os.Getwd()
	logFile, err := os.Create(filepath.Join(root, "bin", "bench-manager.log"))
	if err != nil {
		return err
	}
	defer logFile.Close() //nolint:errcheck // log
	env, err := localenv.Start(localenv.Options{RepoRoot: root, Fake: fake})
	if err != nil {
		return err
	}
	defer env.Stop() //nolint:errcheck // best effort
	ctx := context.Background()
	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: accountName, Namespace: ns},
		StringData: map[string]string{"accountSid": account, "apiKeySid": keySid, "apiKeySecret": keySecret}}); err != nil {
		return err
	}
	if err := c.Create(ctx, &v1alpha1.TwilioAccount{ObjectMeta: metav1.ObjectMeta{Name: accountName, Namespace: ns},
		Spec: v1alpha1.TwilioAccountSpec{CredentialsSecretRef: v1alpha1.SecretReference{Name: accountName}, Limits: s.accountLimits()}}); err != nil {
		return err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	probeAddr, err := freeAddr()
	if err != nil {
		return err
	}
	pprofAddr, err := freeAddr()
	if err != nil {
		return err
	}
	started := &lineWatch{out: logFile, want: []byte(`"Starting workers"`), seen: make(chan struct{})}
	mgr, err := env.StartManager(started, s.managerFlags(metricsAddr, probeAddr, pprofAddr)...)
	if err != nil {
		return err
	}
	if err := waitHTTP("http://"+probeAddr+"/readyz", time.Minute); err != nil {
		return fmt.Errorf("manager not ready: %w", err)
	}
	// The clock starts once the controller's caches are synced and its workers run.
	select {
	case <-started.seen:
	case <-time.After(time.Minute):
		return errors.New("the controller's workers did not start within a minute")
	}
	peak := &peakSampler{pid: mgr.PID(), metrics: "http://" + metricsAddr + "/metrics", scrapeEvery: s.scrapeEvery()}
	stopSampling := peak.run()
	defer stopSampling()

	fmt.Printf("bench: %s mode, N=%d, latency %s, account %d rps (0: none) and %d in flight, operator flags %v, account limits %s\n",
		s.mode, s.n, s.latency, s.accountRPS, s.concurrency, s.managerFlags(metricsAddr, probeAddr, pprofAddr), limitsText(s.accountLimits()))
	fake.ResetLog()
	cpuBefore := cpuTimes(mgr.PID())
	start := time.Now()
	peak.startCeiling(start)
	go createObjects(ctx, c, s.n, s.createRate())
	if os.Getenv("BENCH_APISERVER_PROFILE") == "1" {
		go apiserverProfile(env.Config, filepath.Join(root, "bin", "bench-apiserver-cpu.pprof"))
	}
	series, err := waitReady(ctx, c, s.n, start, 30*time.Minute)
	if err != nil {
		return err
	}
	converge := time.Since(start)
	cpu := cpuShare(cpuBefore, cpuTimes(mgr.PID()), converge)
	counts, refused, faults := fake.Counts(), fake.RefusedCounts(), fake.FaultCounts()
	latencies := peak.means()
	ceiling := peak.stopCeiling()
	fmt.Printf("bench: %d Ready after %s\n", s.n, converge.Round(time.Millisecond))
	heapProfile(root, "http://"+pprofAddr)
	if os.Getenv("BENCH_CONVERGE_ONLY") == "1" { // a quick look at convergence alone; no report
		if reqs := fake.Requests(); len(reqs) > 0 {
			fmt.Printf("bench: first Twilio request %s after the first create, last %s\n",
				reqs[0].Time.Sub(start).Round(time.Millisecond), reqs[len(reqs)-1].Time.Sub(start).Round(time.Millisecond))
			perSecond := make([]int, int(reqs[len(reqs)-1].Time.Sub(start)/time.Second)+1)
			for _, r := range reqs {
				if d := r.Time.Sub(start); d >= 0 {
					perSecond[int(d/time.Second)]++
				}
			}
			fmt.Printf("bench: Twilio requests per second: %v\n", perSecond)
		}
		fmt.Printf("bench: Twilio calls %v, faults %v, ceiling %s\nbench: CPU %s\nbench: %s\n", counts, faults, ceilingText(ceiling), cpu, latencies)
		pk := peak.peaks(start)
		fmt.Printf("bench: manager peak RSS %.1f MiB at %s, heap in use %.1f MiB at %s (since the first create)\n",
			float64(pk.rss)/(1<<20), pk.rssAt, float64(pk.heap)/(1<<20), pk.heapAt)
		return nil
	}

	// Steady state: the Twilio calls of the converged operator (steadyWindow).
	steady := watchSteady(fake, s.syncPeriod, func() { time.Sleep(steadyWindow(s.syncPeriod)) })
	fmt.Printf("bench: steady state: %s\n", steady.text(s.n))
	steadyEnd := time.Since(start)

	// Delete 10% of the webhooks behind the operator's back; time until all are back.
	hooks := fake.Webhooks()
	for i := 0; i < len(hooks)/10; i++ {
		fake.DeleteWebhook(hooks[i*10].Sid)
	}
	deletedAt := time.Now()
	for len(fake.Webhooks()) < s.n {
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := waitReady(ctx, c, s.n, deletedAt, 2*s.syncPeriod+time.Minute); err != nil {
		return err
	}
	reconverge := time.Since(deletedAt)
	fmt.Printf("bench: re-converged after deleting %d webhooks in %s\n", len(hooks)/10, reconverge.Round(time.Millisecond))

	pk := peak.peaks(start)
	return report(s, result{converge: converge, counts: counts, refused: refused, faults: faults, steady: steady, reconverge: reconverge,
		deleted: len(hooks) / 10, rss: pk.rss, heap: pk.heap, goroutines: pk.goroutines, series: series, ceiling: ceiling, latencies: latencies, cpu: cpu,
		rssWhen: phaseOf(pk.rssAt, converge, steadyEnd), heapWhen: phaseOf(pk.heapAt, converge, steadyEnd)})
}

func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not OK after %s", url, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lineWatch passes a process's output on and closes seen when want appears.
type lineWatch struct {
	out  io.Writer
	want []byte
	seen chan struct{}
	once sync.Once
}

func (w *lineWatch) Write(p []byte) (int, error) {
	if bytes.Contains(p, w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return w.out.Write(p)
}

func freeAddr() (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close() //nolint:errcheck // probe
	return ln.Addr().String(), nil
}

// createObjects creates n objects at perSecond (twice the account's rate: the
// operator always has work waiting, and the API server is not flooded by the
// bench itself, as a GitOps tool applying objects would not flood it).
func createObjects(ctx context.Context, c client.Client, n, perSecond int) {
	var wg sync.WaitGroup
	work := make(chan int)
	pace := rate.NewLimiter(rate.Limit(perSecond), 1)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				o := &v1alpha1.ConversationWebhook{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("hook-%05d", i), Namespace: ns},
					Spec: v1alpha1.ConversationWebhookSpec{
						ConversationSid: fmt.Sprintf("CH%032x", i/4), Target: v1alpha1.TargetWebhook,
						URL:        fmt.Sprintf("https://hooks.example.com/%d", i),
						Filters:    []v1alpha1.Filter{"onMessageAdded"},
						AccountRef: &v1alpha1.AccountReference{Name: accountName},
					},
				}
				for c.Create(ctx, o) != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	for i := range n {
		_ = pace.Wait(ctx)
		work <- i
	}
	close(work)
	wg.Wait()
}

type point struct {
	at    time.Duration
	ready int
}

// waitReady watches until n objects are Ready at their generation, recording
// how many were Ready over time (a watch, so the bench adds little load).
func waitReady(ctx context.Context, c client.WithWatch, n int, start time.Time, timeout time.Duration) ([]point, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ready := map[string]bool{}
	count := 0
	var series []point
	for {
		var list v1alpha1.ConversationWebhookList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for i := range list.Items {
			count = track(ready, count, &list.Items[i])
		}
		series = append(series, point{time.Since(start), count})
		if count == n {
			return series, nil
		}
		w, err := c.Watch(ctx, &v1alpha1.ConversationWebhookList{}, client.InNamespace(ns),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			return nil, err
		}
		for ev := range w.ResultChan() {
			if o, ok := ev.Object.(*v1alpha1.ConversationWebhook); ok {
				if count = track(ready, count, o); len(series) == 0 || time.Since(start)-series[len(series)-1].at > 100*time.Millisecond || count == n {
					series = append(series, point{time.Since(start), count})
				}
			}
			if count == n {
				w.Stop()
				return series, nil
			}
		}
		if ctx.Err() != nil {
			return series, fmt.Errorf("%d of %d Ready after %s", count, n, timeout)
		}
	}
}

// heapProfile saves the manager's heap profile once converged (after a GC:
// what stays) to bin/bench-heap.pprof and prints where the memory is.
func heapProfile(root, pprofURL string) {
	out := filepath.Join(root, "bin", "bench-heap.pprof")
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, pprofURL+"/debug/pprof/heap?gc=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println("bench: no heap profile:", err)
		return
	}
	defer resp.Body.Close() //nolint:errcheck // read-only
	data, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(out, data, 0o600)
	}
	if err != nil {
		fmt.Println("bench: no heap profile:", err)
		return
	}
	top, err := exec.Command("go", "tool", "pprof", "-top", "-sample_index=inuse_space", out).CombinedOutput() //nolint:noctx // local
	if err != nil {
		fmt.Println("bench: heap profile in", out, "(go tool pprof failed:", err, ")")
		return
	}
	lines := strings.Split(string(top), "\n")
	fmt.Printf("bench: heap profile in %s, after a GC:\n%s\n", out, strings.Join(lines[:min(len(lines), 25)], "\n"))
}

func track(ready map[string]bool, count int, o *v1alpha1.ConversationWebhook) int {
	cond := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady)
	now := cond != nil && cond.Status == metav1.ConditionTrue && o.Status.ObservedGeneration == o.Generation
	if now != ready[o.Name] {
		ready[o.Name] = now
		if now {
			return count + 1
		}
		return count - 1
	}
	return count
}

// peakSampler records the manager's peak RSS (VmHWM) and peak Go heap in use,
// and, from startCeiling to stopCeiling, its in-flight ceiling for the account
// (twilio_account_inflight_limit) over time.
type peakSampler struct {
	pid int
	// scrapeEvery is how often /metrics is read (settings.scrapeEvery).
	scrapeEvery time.Duration
	metrics     string
	mu          sync.Mutex
	rss, heap   int64
	goroutines  int64
	// rssAt and heapAt are when the peaks were last raised.
	rssAt, heapAt time.Time
	// ceilingFrom is zero when the ceiling is not being recorded.
	ceilingFrom time.Time
	ceiling     []point
}

func (p *peakSampler) startCeiling(from time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ceilingFrom, p.ceiling = from, nil
}

func (p *peakSampler) stopCeiling() []point {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ceilingFrom = time.Time{}
	return p.ceiling
}

func (p *peakSampler) run() func() {
	done := make(chan struct{})
	go func() {
		// VmHWM once a second; /metrics every p.scrapeEvery: each scrape renders
		// every object's status gauges (nine series an object), which at
		// N=10,000 costs the manager about 40 ms of CPU and 19 MB of garbage
		// (BenchmarkStatusMetricsScrape), where Prometheus scrapes every 30 s
		// or 1 m.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last time.Time
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				p.sampleRSS()
				if now.Sub(last) >= p.scrapeEvery {
					last = now
					p.scrape()
				}
			}
		}
	}()
	return func() { close(done) }
}

func (p *peakSampler) sampleRSS() {
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid)); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
				p.mu.Lock()
				if kb*1024 > p.rss {
					p.rss, p.rssAt = kb*1024, time.Now()
				}
				p.mu.Unlock()
			}
		}
	}
}

// scrape reads the manager's heap, goroutines and in-flight ceiling from /metrics.
func (p *peakSampler) scrape() {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, p.metrics, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close() //nolint:errcheck // read-only
	// The whole body: at N=10,000 the status gauges alone are 10 MB, and the
	// series read here come after them.
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 256<<20))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			p.mu.Lock()
			if int64(f) > p.heap {
				p.heap, p.heapAt = int64(f), time.Now()
			}
			p.mu.Unlock()
		}
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			p.mu.Lock()
			p.goroutines = max(p.goroutines, int64(f))
			p.mu.Unlock()
		}
		if rest, ok := strings.CutPrefix(sc.Text(), "twilio_account_inflight_limit{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, _ := strconv.ParseFloat(v, 64)
			p.mu.Lock()
			if !p.ceilingFrom.IsZero() {
				p.ceiling = append(p.ceiling, point{time.Since(p.ceilingFrom), int(f)})
			}
			p.mu.Unlock()
		}
	}
}

func limitsText(l *v1alpha1.AccountLimits) string {
	if l == nil || l.RequestsPerSecond == nil {
		return "none (the operator's flags)"
	}
	return fmt.Sprintf("requestsPerSecond %d", *l.RequestsPerSecond)
}

// means reads, from the manager's metrics while converging, how many API-server
// requests it made by verb, and the mean latency of a reconcile, of a wait in
// the workqueue and of a Twilio request.
func (p *peakSampler) means() string {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, p.metrics, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "unavailable"
	}
	defer resp.Body.Close() //nolint:errcheck // read-only
	sums, counts := map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	requests := map[string]float64{}
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "rest_client_requests_total{"); ok {
			if i := strings.Index(rest, `method="`); i >= 0 {
				_, v, _ := strings.Cut(rest, "} ")
				f, _ := strconv.ParseFloat(v, 64)
				requests[strings.SplitN(rest[i+8:], `"`, 2)[0]] += f
			}
		}
		for _, m := range []string{"controller_runtime_reconcile_time_seconds", "workqueue_queue_duration_seconds",
			"twilio_api_request_duration_seconds"} {
			for suffix, into := range map[string]map[string]float64{"_sum": sums, "_count": counts} {
				rest, ok := strings.CutPrefix(line, m+suffix)
				if !ok {
					continue
				}
				labels, value, _ := strings.Cut(rest, " ")
				key := m
				for _, l := range []string{`verb="`, `controller="`} {
					if i := strings.Index(labels, l); i >= 0 {
						key += " " + strings.SplitN(labels[i+len(l):], `"`, 2)[0]
					}
				}
				f, _ := strconv.ParseFloat(value, 64)
				into[key] += f
			}
		}
	}
	var parts []string
	for k, c := range requests {
		parts = append(parts, fmt.Sprintf("API-server %s requests %.0f", k, c))
	}
	for k, c := range counts {
		if c > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0fms (n=%.0f)", strings.TrimSuffix(k, "_seconds"), 1000*sums[k]/c, c))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// phaseOf names when a peak came (time since the first create), given when
// convergence and the steady-state window ended.
func phaseOf(at, converged, steadyEnd time.Duration) string {
	if at < 0 {
		return "before the first create"
	}
	phase := "while re-converging"
	switch {
	case at <= converged:
		phase = "while converging"
	case at <= steadyEnd:
		phase = "in steady state"
	}
	return fmt.Sprintf("%s after the first create, %s", at, phase)
}

// peakFigures are the peaks a run reached, and when (time since start).
type peakFigures struct {
	rss, heap, goroutines int64
	rssAt, heapAt         time.Duration
}

// peaks samples once more and returns the peaks, dated from start.
func (p *peakSampler) peaks(start time.Time) peakFigures {
	p.sampleRSS()
	p.scrape()
	p.mu.Lock()
	defer p.mu.Unlock()
	return peakFigures{rss: p.rss, heap: p.heap, goroutines: p.goroutines,
		rssAt: p.rssAt.Sub(start).Round(time.Second), heapAt: p.heapAt.Sub(start).Round(time.Second)}
}

func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if out, err := exec.Command("free", "-g").Output(); err == nil { //nolint:noctx // local, instant
		if lines := strings.Split(string(out), "\n"); len(lines) > 1 {
			if f := strings.Fields(lines[1]); len(f) > 1 {
				mem = f[1] + " GiB"
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s memory, %s %s/%s", runtime.NumCPU(), cpu, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// cpuTimes reads the CPU time used so far by the control plane's processes
// (kube-apiserver, etcd), the manager and the bench itself, from /proc.
func cpuTimes(manager int) map[string]time.Duration {
	out := map[string]time.Duration{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		name := strings.TrimSpace(string(comm))
		switch {
		case pid == manager:
			name = "manager"
		case pid == os.Getpid():
			name = "bench"
		case name != "kube-apiserver" && name != "etcd":
			continue
		}
		out[name] += procCPU(pid)
	}
	return out
}

// procCPU is a process's user and system time (fields 14 and 15 of its stat).
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count from after it.
	rest := string(data)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// cpuShare says how the machine's CPU went while converging: each process's
// CPU time over the elapsed time, as cores.
func cpuShare(before, after map[string]time.Duration, elapsed time.Duration) string {
	parts := make([]string, 0, 4)
	total := 0.0
	for _, name := range []string{"kube-apiserver", "etcd", "manager", "bench"} {
		cores := (after[name] - before[name]).Seconds() / elapsed.Seconds()
		total += cores
		parts = append(parts, fmt.Sprintf("%s %.2f", name, cores))
	}
	return fmt.Sprintf("%s cores (together %.2f of %d)", strings.Join(parts, ", "), total, runtime.NumCPU())
}

// apiserverProfile writes a 10-second CPU profile of kube-apiserver, taken 2 s
// into convergence, to out and prints its top functions by cumulative time: where
// the control plane spends the cores it shares with the manager.
func apiserverProfile(cfg *restclient.Config, out string) {
	time.Sleep(2 * time.Second)
	hc, err := restclient.HTTPClientFor(cfg)
	if err != nil {
		fmt.Println("bench: no kube-apiserver profile:", err)
		return
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet,
		strings.TrimSuffix(cfg.Host, "/")+"/debug/pprof/profile?seconds=10", nil)
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Println("bench: no kube-apiserver profile:", err)
		return
	}
	defer resp.Body.Close() //nolint:errcheck // read-only
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s", resp.Status)
	}
	if err == nil {
		err = os.WriteFile(out, data, 0o600)
	}
	if err != nil {
		fmt.Println("bench: no kube-apiserver profile:", err)
		return
	}
	top, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=40", out).CombinedOutput() //nolint:noctx // local
	if err != nil {
		fmt.Println("bench: kube-apiserver profile in", out, "(go tool pprof failed:", err, ")")
		return
	}
	fmt.Printf("bench: kube-apiserver CPU profile in %s:\n%s\n", out, top)
}
