package main

import (
	"strings"
	"testing"
	"time"
)

func TestPprofExposed(t *testing.T) {
	for addr, want := range map[string]bool{
		"0": false, "": false, "127.0.0.1:8082": false, "[::1]:8082": false, "localhost:8082": false,
		":6060": true, "0.0.0.0:6060": true, "10.0.0.5:6060": true, "pprof.example.com:6060": true, "nonsense": true,
	} {
		if got := pprofExposed(addr); got != want {
			t.Errorf("pprofExposed(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestCheckFlags(t *testing.T) {
	good := config{syncPeriod: 10 * time.Minute, maxConcurrent: 10, twilioRPS: 25, twilioMaxInFlight: 10, twilioTimeout: 10 * time.Second}
	if err := checkFlags(good); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*config)
		want string
	}{
		"sync period below the floor": {func(c *config) { c.syncPeriod = 10 * time.Second }, "--sync-period"},
		"no workers":                  {func(c *config) { c.maxConcurrent = 0 }, "--max-concurrent-reconciles"},
		"no rate":                     {func(c *config) { c.twilioRPS = 0 }, "--twilio-rps"},
		"no slot":                     {func(c *config) { c.twilioMaxInFlight = 0 }, "--twilio-max-inflight"},
		"no timeout":                  {func(c *config) { c.twilioTimeout = 0 }, "--twilio-timeout"},
		"negative timeout":            {func(c *config) { c.twilioTimeout = -time.Second }, "--twilio-timeout"},
	} {
		cfg := good
		tc.edit(&cfg)
		if err := checkFlags(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: checkFlags = %v, want an error naming %s", name, err, tc.want)
		}
	}
}
