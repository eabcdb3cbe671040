package clustertest

import (
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
)

func newGrant() domain.Grant {
	return domain.Grant{GrantID: "g", Amount: decimal.NewFromInt(1_000_000), Source: domain.SourcePurchase}
}
