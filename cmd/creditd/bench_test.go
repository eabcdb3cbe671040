package main

import (
	"strings"
	"testing"
)

// A warm-up smaller than the tenants would leave some of its tenants
// without an event, and benchProduce divides the events among them; the
// bench refuses it before it starts anything.
func TestBenchRefusesAWarmupSmallerThanItsTenants(t *testing.T) {
	err := bench([]string{"--events", "100", "--tenants", "10", "--warmup", "5"})
	if err == nil || !strings.Contains(err.Error(), "warmup") {
		t.Fatalf("bench --warmup 5 --tenants 10: %v, want an error naming the warmup", err)
	}
	if err := bench([]string{"--events", "100", "--tenants", "10", "--warmup", "-1"}); err == nil || !strings.Contains(err.Error(), "warmup") {
		t.Fatalf("bench --warmup -1: %v, want an error naming the warmup", err)
	}
}
