package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
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
	targetCreatesPerWH  = 1.02
	targetRSSAt10k      = 200 << 20
	targetFetchesPerWH  = 1.0
	resultsDirRelative  = "test/bench/results"
	plotWidth, plotHigh = 800, 400
)

func report(s settings, converge time.Duration, counts map[string]int, faults map[twiliofake.FaultKind]int,
	steady map[string]int, reconverge time.Duration, deleted int, rss, heap int64, series []point, latencies string) error {
	boundRate := time.Duration(float64(s.n) / float64(s.accountRPS) * float64(time.Second))
	boundConc := time.Duration(float64(s.n) * float64(s.latency) / float64(s.concurrency))
	bound := max(boundRate, boundConc)
	ratio := converge.Seconds() / bound.Seconds()
	per := func(op string) float64 { return float64(counts[op]) / float64(s.n) }
	got429 := faults[twiliofake.FaultAccountRate] + faults[twiliofake.FaultConcurrencyLimit] + faults[twiliofake.FaultRateLimited]
	steadyTotal := 0
	for _, v := range steady {
		steadyTotal += v
	}
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	date := time.Now().UTC().Format("2006-01-02")
	var b strings.Builder
	fmt.Fprintf(&b, "# make bench, N=%d (%s)\n\n", s.n, date)
	fmt.Fprintf(&b, "Machine: %s. Control plane: envtest (kube-apiserver 1.37.2, etcd) on the same machine.\n\n", machine())
	fmt.Fprintf(&b, "Twilio fake: %s latency per request, account limit %d requests/s (token bucket, burst %d) and %d in flight (429/20429 past either). "+
		"Operator: `--twilio-rps=%d --max-concurrent-reconciles=%d --sync-period=%s`. "+
		"%d objects across %d conversations, created at %d/s (twice the account's rate).\n\n",
		s.latency, s.accountRPS, s.burst, s.concurrency, s.twilioRPS, s.workers, s.syncPeriod, s.n, (s.n+3)/4, 2*s.accountRPS)
	b.WriteString("| measure | value | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| time until all Ready | %s | |\n", converge.Round(time.Millisecond))
	fmt.Fprintf(&b, "| lower bound from the account's limits | %s (N ÷ rate %s, N × latency ÷ concurrency %s) | |\n",
		bound.Round(time.Millisecond), boundRate.Round(time.Millisecond), boundConc.Round(time.Millisecond))
	fmt.Fprintf(&b, "| ratio | %.3f | ≤ %.2f: %s |\n", ratio, targetRatio, check(ratio <= targetRatio))
	fmt.Fprintf(&b, "| Twilio calls per webhook while converging | create %.3f, fetch %.3f, update %.3f, list %.3f, delete %.3f | create ≤ %.2f: %s |\n",
		per("create"), per("fetch"), per("update"), per("list"), per("delete"), targetCreatesPerWH, check(per("create") <= targetCreatesPerWH))
	fmt.Fprintf(&b, "| 429s received | %d | 0 with --twilio-rps below the account's rate: %s |\n", got429, check(got429 == 0))
	fmt.Fprintf(&b, "| manager peak RSS | %.1f MiB | < 200 MiB at N=10,000%s |\n", float64(rss)/(1<<20), rssCheck(s.n, rss, check))
	fmt.Fprintf(&b, "| manager peak heap in use | %.1f MiB | |\n", float64(heap)/(1<<20))
	fmt.Fprintf(&b, "| Twilio calls in one sync period once converged | %d (%v) = %.3f per webhook | ≤ 1 fetch per webhook: %s |\n",
		steadyTotal, steady, float64(steadyTotal)/float64(s.n), check(float64(steady["fetch"])/float64(s.n) <= targetFetchesPerWH && steadyTotal == steady["fetch"]))
	fmt.Fprintf(&b, "| re-converge after %d webhooks (10%%) deleted behind its back | %s | detection waits for each object's next sync (≤ %s + 10%% jitter) |\n",
		deleted, reconverge.Round(time.Millisecond), s.syncPeriod)
	fmt.Fprintf(&b, "\nMean latencies in the manager while converging: %s.\n", latencies)
	plotName := fmt.Sprintf("bench-n%d-ready.png", s.n)
	fmt.Fprintf(&b, "\n![Ready objects over time](%s)\n", plotName)

	dir := resultsDirRelative
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	md := filepath.Join(dir, fmt.Sprintf("bench-n%d.md", s.n))
	if err := os.WriteFile(md, []byte(b.String()), 0o644); err != nil { //nolint:gosec // a report
		return err
	}
	if err := plot(filepath.Join(dir, plotName), series, s.n, bound); err != nil {
		return err
	}
	fmt.Print("\n" + b.String())
	fmt.Printf("\nbench: wrote %s and %s\n", md, filepath.Join(dir, plotName))
	return nil
}

func rssCheck(n int, rss int64, check func(bool) string) string {
	if n < 10000 {
		return ""
	}
	return ": " + check(rss < targetRSSAt10k)
}

// plot draws Ready objects over time, with the lower bound as a vertical line.
func plot(path string, series []point, n int, bound time.Duration) error {
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
