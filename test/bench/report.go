package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Targets stated in the README.
const (
	targetRatio         = 1.15
	targetRatioCapped   = 1.3
	target429Share      = 0.02
	target429Capped     = 0.05
	targetCreatesPerWH  = 1.02
	targetRSSAt10k      = 200 << 20
	targetFetchesPerWH  = 1.0
	resultsDirRelative  = "test/bench/results"
	plotWidth, plotHigh = 800, 400
)

// result is what one run measured.
type result struct {
	converge, reconverge  time.Duration
	counts                map[string]int
	steady                steady
	refused               map[string]int
	faults                map[twiliofake.FaultKind]int
	deleted               int
	rss, heap, goroutines int64
	// rssWhen and heapWhen say when the peaks came (phaseOf).
	rssWhen, heapWhen string
	series, ceiling   []point
	latencies, cpu    string
}

// bounds are the least time any client needs for N creates under the
// account's limits: N ÷ rate, and N × latency ÷ in-flight cap.
func (s settings) bounds() (bound, byRate, byConcurrency time.Duration) {
	if s.accountRPS > 0 {
		byRate = time.Duration(float64(s.n) / float64(s.accountRPS) * float64(time.Second))
	}
	if s.concurrency > 0 {
		byConcurrency = time.Duration(float64(s.n) * float64(s.latency) / float64(s.concurrency))
	}
	return max(byRate, byConcurrency), byRate, byConcurrency
}

// targets are the ratio and the share of 429s the issue sets for the mode.
func (s settings) targets() (ratio float64, share429 float64, text429 string) {
	switch {
	case s.mode == modeRate:
		return targetRatio, 0, "0 with --twilio-rps below the account's rate"
	case s.concurrency < operatorInFlight:
		return targetRatioCapped, target429Capped, fmt.Sprintf("≤ %.0f%% of requests (real cap below the configured one)", 100*target429Capped)
	}
	return targetRatio, target429Share, fmt.Sprintf("≤ %.0f%% of requests", 100*target429Share)
}

func report(s settings, r result) error {
	bound, boundRate, boundConc := s.bounds()
	ratio := r.converge.Seconds() / bound.Seconds()
	per := func(op string) float64 { return float64(r.counts[op]) / float64(s.n) }
	got429 := r.faults[twiliofake.FaultAccountRate] + r.faults[twiliofake.FaultConcurrencyLimit] + r.faults[twiliofake.FaultRateLimited]
	requests := 0
	for _, v := range r.counts {
		requests += v
	}
	share := float64(got429) / float64(max(requests, 1))
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	wantRatio, wantShare, text429 := s.targets()
	date := time.Now().UTC().Format("2006-01-02")
	var b strings.Builder
	fmt.Fprintf(&b, "# make bench, %s mode, N=%d (%s)\n\n", s.mode, s.n, date)
	fmt.Fprintf(&b, "Machine: %s. Control plane: envtest (kube-apiserver 1.37.2, etcd) on the same machine; nothing else running. "+
		"Manager: `bin/manager` of commit %s; its RSS read every second, its /metrics every %s.\n\n", machine(), commit(), s.scrapeEvery())
	fmt.Fprintf(&b, "Twilio fake: %s latency per request; account limits: %s and %d requests in flight (429/20429 past either). "+
		"Operator flags: `%s; account `spec.limits`: %s. %d objects across %d conversations, created at %d/s (twice the bound's rate).\n\n",
		s.latency, rateText(s), s.concurrency, "--sync-period="+s.syncPeriod.String()+operatorFlagsText(s), limitsText(s.accountLimits()),
		s.n, (s.n+3)/4, s.createRate())
	b.WriteString("| measure | value | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| time until all Ready | %s | |\n", r.converge.Round(time.Millisecond))
	fmt.Fprintf(&b, "| lower bound from the account's limits | %s (N ÷ rate %s, N × latency ÷ in-flight cap %s) | |\n",
		bound.Round(time.Millisecond), boundRate.Round(time.Millisecond), boundConc.Round(time.Millisecond))
	fmt.Fprintf(&b, "| ratio | %.3f | ≤ %.2f: %s |\n", ratio, wantRatio, check(ratio <= wantRatio))
	accepted := float64(r.counts[twiliofake.OpCreate]-r.refused[twiliofake.OpCreate]) / float64(s.n)
	fmt.Fprintf(&b, "| Twilio calls per webhook while converging | create %.3f (%.3f refused by a 429, so %.3f made a webhook), "+
		"fetch %.3f, update %.3f, list %.3f, delete %.3f | creates that made a webhook ≤ %.2f: %s |\n",
		per("create"), float64(r.refused[twiliofake.OpCreate])/float64(s.n), accepted, per("fetch"), per("update"), per("list"), per("delete"),
		targetCreatesPerWH, check(accepted <= targetCreatesPerWH))
	fmt.Fprintf(&b, "| 429s received | %d of %d requests (%.2f%%)%s, %.3f per webhook | %s: %s |\n",
		got429, requests, 100*share, refusedText(r.refused), float64(got429)/float64(s.n), text429, check(share <= wantShare))
	fmt.Fprintf(&b, "| in-flight ceiling (twilio_account_inflight_limit) | %s | |\n", ceilingText(r.ceiling))
	fmt.Fprintf(&b, "| manager peak RSS | %.1f MiB (%s) | < 200 MiB at N=10,000%s |\n", float64(r.rss)/(1<<20), r.rssWhen, rssCheck(s.n, r.rss, check))
	fmt.Fprintf(&b, "| manager peak heap in use, goroutines | %.1f MiB (%s), %d | |\n", float64(r.heap)/(1<<20), r.heapWhen, r.goroutines)
	fmt.Fprintf(&b, "| Twilio calls once converged | %s | ≤ 1 fetch per webhook per sync period, nothing else: %s |\n",
		r.steady.text(s.n), check(r.steady.ok()))
	fmt.Fprintf(&b, "| re-converge after %d webhooks (10%%) deleted behind its back | %s | detection waits for each object's next sync (≤ %s + 10%% jitter) |\n",
		r.deleted, r.reconverge.Round(time.Millisecond), s.syncPeriod)
	fmt.Fprintf(&b, "\nCPU while converging: %s.\n", r.cpu)
	fmt.Fprintf(&b, "\nIn the manager while converging (API-server requests: how many, by verb; the rest: mean latency and count): %s.\n", r.latencies)
	plotName := fmt.Sprintf("bench-%s-n%d-ready.png", s.tag(), s.n)
	fmt.Fprintf(&b, "\n![Ready objects over time, and the in-flight ceiling](%s)\n", plotName)

	dir := resultsDirRelative
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	md := filepath.Join(dir, fmt.Sprintf("bench-%s-n%d.md", s.tag(), s.n))
	if err := os.WriteFile(md, []byte(b.String()), 0o644); err != nil { //nolint:gosec // a report
		return err
	}
	if err := plot(filepath.Join(dir, plotName), r.series, r.ceiling, s.n, bound); err != nil {
		return err
	}
	fmt.Print("\n" + b.String())
	fmt.Printf("\nbench: wrote %s and %s\n", md, filepath.Join(dir, plotName))
	return nil
}

// commit names the checkout the bench ran from (bin/manager is built from it by make bench).
// Earlier runs' reports under test/bench/results are not part of the manager: a tree that
// differs from the commit only there is that commit, so a chain of runs names it clean.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output() //nolint:noctx // local, instant
	if err != nil {
		return "unknown"
	}
	name := strings.TrimSpace(string(out))
	changed, err := exec.Command("git", "status", "--porcelain", "--", //nolint:noctx // local, instant
		":/", ":(top,exclude)test/bench/results").Output()
	if err != nil || strings.TrimSpace(string(changed)) != "" {
		return name + "-dirty"
	}
	return name
}

func rateText(s settings) string {
	if s.accountRPS <= 0 {
		return "no rate limit"
	}
	return fmt.Sprintf("%d requests/s (token bucket, burst %d)", s.accountRPS, s.burst)
}

func operatorFlagsText(s settings) string {
	var parts []string
	if s.twilioRPS > 0 {
		parts = append(parts, " --twilio-rps="+strconv.Itoa(s.twilioRPS))
	}
	if s.workers > 0 {
		parts = append(parts, " --max-concurrent-reconciles="+strconv.Itoa(s.workers))
	}
	if len(parts) == 0 {
		return "`, otherwise the defaults (`--max-concurrent-reconciles=10 --twilio-max-inflight=10 --twilio-rps=25`)"
	}
	return strings.Join(parts, "") + "`"
}

// ceilingText summarises the ceiling's samples: its range and its value at the end.
func ceilingText(c []point) string {
	if len(c) == 0 {
		return "not sampled"
	}
	lo, hi := c[0].ready, c[0].ready
	for _, p := range c {
		lo, hi = min(lo, p.ready), max(hi, p.ready)
	}
	return fmt.Sprintf("%d to %d over %d samples, %d at the end", lo, hi, len(c), c[len(c)-1].ready)
}

// refusedText names the operations the fake refused, with how many of each.
func refusedText(refused map[string]int) string {
	var parts []string
	for op, n := range refused {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	slices.Sort(parts)
	return ": " + strings.Join(parts, ", ")
}

func rssCheck(n int, rss int64, check func(bool) string) string {
	if n < 10000 {
		return ""
	}
	return ": " + check(rss < targetRSSAt10k)
}

// plot draws Ready objects over time, with the lower bound as a vertical line,
// and the in-flight ceiling (right-hand scale, green) over the same time.
func plot(path string, series, ceiling []point, n int, bound time.Duration) error {
	img := image.NewRGBA(image.Rect(0, 0, plotWidth, plotHigh))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.White}, image.Point{}, draw.Src)
	const left, right, top, bottom = 70, 20, 30, 40
	w, h := plotWidth-left-right, plotHigh-top-bottom
	end := bound
	if len(series) > 0 {
		end = max(end, series[len(series)-1].at)
	}
	x := func(d time.Duration) int { return left + int(float64(w)*d.Seconds()/end.Seconds()) }
	y := func(r int) int { return top + h - int(float64(h)*float64(r)/float64(n)) }
	grey, blue, red := color.RGBA{200, 200, 200, 255}, color.RGBA{30, 90, 200, 255}, color.RGBA{200, 40, 40, 255}
	line(img, left, top+h, left+w, top+h, color.Black)
	line(img, left, top, left, top+h, color.Black)
	for i := 1; i <= 4; i++ {
		line(img, left, y(n*i/4), left+w, y(n*i/4), grey)
		label(img, 5, y(n*i/4)+4, fmt.Sprint(n*i/4))
	}
	line(img, x(bound), top, x(bound), top+h, red)
	boundLabel := "bound " + bound.Round(100*time.Millisecond).String()
	lx := x(bound) + 4
	if lx+7*len(boundLabel) > plotWidth { // keep the label inside the picture
		lx = x(bound) - 4 - 7*len(boundLabel)
	}
	label(img, lx, top+12, boundLabel)
	for i := 1; i < len(series); i++ {
		line(img, x(series[i-1].at), y(series[i-1].ready), x(series[i].at), y(series[i].ready), blue)
	}
	plotCeiling(img, ceiling, x, top, h)
	label(img, left, plotHigh-12, "0s")
	label(img, left+w-60, plotHigh-12, end.Round(100*time.Millisecond).String())
	label(img, left+w/2-60, plotHigh-12, "time since first create")
	label(img, left, 18, fmt.Sprintf("Ready ConversationWebhooks (N=%d)", n))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // checked by Encode
	return png.Encode(f, img)
}

// plotCeiling draws the ceiling as steps against a right-hand scale from 0 to
// its highest sample, in green.
func plotCeiling(img *image.RGBA, ceiling []point, x func(time.Duration) int, top, h int) {
	hi := 0
	for _, p := range ceiling {
		hi = max(hi, p.ready)
	}
	if hi == 0 {
		return
	}
	green := color.RGBA{30, 150, 60, 255}
	y := func(v int) int { return top + h - int(float64(h)*float64(v)/float64(hi)) }
	for i := 1; i < len(ceiling); i++ {
		a, b := ceiling[i-1], ceiling[i]
		line(img, x(a.at), y(a.ready), x(b.at), y(a.ready), green)
		line(img, x(b.at), y(a.ready), x(b.at), y(b.ready), green)
	}
	label(img, 80, top+28, fmt.Sprintf("green: in-flight ceiling, 0 to %d", hi))
}

func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func label(img *image.RGBA, x, y int, s string) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
