package domain

import (
	"strconv"
	"testing"
)

// BenchmarkDecideUsage decides and applies one usage debit, as a partition
// writer does for every usage event: on a line with one grant, and on one
// with two grants and an armed auto-reload (both Free paths, checkTotals).
// Its allocations are mostly shopspring/decimal's (every operation makes a
// big.Int).
func BenchmarkDecideUsage(b *testing.B) {
	for _, bc := range []struct {
		name   string
		events []Event
	}{
		{"one-grant", []Event{granted("g1", "1000000000")}},
		{"auto-reload", []Event{
			granted("g1", "500000000", expiresAt(t0.AddDate(1, 0, 0))), granted("g2", "500000000"),
			AutoReloadConfigured{Enabled: true, Threshold: d("10"), Amount: d("100")},
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := lineWith(b, bc.events...)
			ids := make([]string, 4096)
			for i := range ids {
				ids[i] = "u-" + strconv.Itoa(i)
			}
			amount := d("0.4")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				checked, err := RecordUsage{UsageID: ids[i%len(ids)], Amount: amount, Dimensions: Dimensions{Module: "search"}}.Check()
				if err != nil {
					b.Fatal(err)
				}
				events, err := DecideCheckedUsage(l, checked, t0)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range events {
					l.Apply(e)
				}
			}
		})
	}
}
