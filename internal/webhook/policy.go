// Package webhook decides which webhook URLs creditd may call.
package webhook

import (
	"net/http"
	"time"
)

// Policy is the operator's webhook rules.
type Policy struct {
	AllowHTTP  bool
	AllowHosts []string
}

// CheckURL reports why raw may not be a webhook URL.
func (p Policy) CheckURL(raw string) error { return nil }

// Client returns the HTTP client that calls webhooks.
func (p Policy) Client(timeout time.Duration) *http.Client { return &http.Client{Timeout: timeout} }
