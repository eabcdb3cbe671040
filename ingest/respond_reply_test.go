package ingest

import "testing"

// TestReplyAllowed: a tenant's answers go to its own inbox, to a plain
// inbox, or back through the producers' account's import (_R_.), nowhere
// else; prefixes are compared by whole tokens.
func TestReplyAllowed(t *testing.T) {
	for _, c := range []struct {
		reply  string
		tenant int64
		want   bool
	}{
		{"_INBOX.tenant.1.abc.1", 1, true},
		{"_INBOX.tenant.1.abc", 1, true},
		{"_INBOX.Qx7abc.9", 1, true},
		{"_INBOX.Qx7abc.9", 0, true},
		{"_INBOX.tenant.12.abc", 1, false},
		{"_INBOX.tenant.1.abc", 12, false},
		{"_INBOX.tenant.1.", 1, false},
		{"_INBOX.tenant.1", 1, false},
		{"_INBOX.tenant.0.abc", 0, false},
		{"_INBOX.tenants.1.abc", 1, false},
		{"_INBOX.tenant", 1, false},
		{"_INBOX.", 1, false},
		{"_INBOX", 1, false},
		{"", 1, false},
		{"credits.registry", 1, false},
		{"credits.events.0", 1, false},
		{"creditd.forward.3", 1, false},
		{"$JS.API.STREAM.PURGE.CREDITS", 1, false},
		{"_INBOX.tenant.1.>", 1, false},
		{"_INBOX.*", 1, false},
		{"_INBOX.a b", 1, false},
		{"x._INBOX.tenant.1.a", 1, false},
		{"_R_.Ab12Cd.Xy", 1, true},
		{"_R_.", 1, false},
		{"_R_.>", 1, false},
	} {
		if got := replyAllowed(c.reply, c.tenant); got != c.want {
			t.Errorf("replyAllowed(%q, %d) = %v, want %v", c.reply, c.tenant, got, c.want)
		}
	}
}
