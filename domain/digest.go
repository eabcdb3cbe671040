package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
)

// LineRef names a tenant's credit line.
type LineRef struct {
	TenantID   int64
	CreditType string
}

// BalancesDigest is the hex SHA-256 of every line's quantities, in a
// canonical text: lines sorted by tenant then credit type, each as
// "tenant|credit_type|granted|adjusted|used|expired|reserved\n" with the
// decimals' shortest exact text. An auditor who keeps a checkpoint's
// digest can recompute it from the log later (docs/audit.md).
func BalancesDigest(lines map[LineRef]*Line) string {
	refs := slices.SortedFunc(maps.Keys(lines), func(a, b LineRef) int {
		if a.TenantID != b.TenantID {
			if a.TenantID < b.TenantID {
				return -1
			}
			return 1
		}
		switch {
		case a.CreditType < b.CreditType:
			return -1
		case a.CreditType > b.CreditType:
			return 1
		}
		return 0
	})
	h := sha256.New()
	for _, ref := range refs {
		l := lines[ref]
		h.Write([]byte(strconv.FormatInt(ref.TenantID, 10) + "|" + ref.CreditType + "|" + l.Granted.String() + "|" + l.Adjusted.String() + "|" +
			l.Used.String() + "|" + l.Expired.String() + "|" + l.Reserved.String() + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}
