package main

import "testing"

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
