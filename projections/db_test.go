package projections

import (
	"testing"

	"github.com/shopspring/decimal"
)

func TestMicroIsExact(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"0", "1", "-1", "0.000001", "-0.000001", "1.5", "1.500000", "1.5000000000", "999999999999.999999",
		"-999999999999.999999", "123456", "1e6", "1.2e-5", "100.50", "0.1000000000000000000000"} {
		d := decimal.RequireFromString(text)
		want := d.Shift(6).IntPart()
		if got := Micro(d); got != want {
			t.Errorf("Micro(%s) = %d, want %d", text, got, want)
		}
		if !FromMicro(Micro(d)).Equal(d) {
			t.Errorf("FromMicro(Micro(%s)) = %s", text, FromMicro(Micro(d)))
		}
	}
}
