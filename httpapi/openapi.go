package httpapi

import (
	"github.com/creditd/creditd/audit"

	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"
)

// requestSchemas and responseSchemas name the Go types whose JSON shapes
// the document describes; the schemas are derived from the types by
// reflection, so they cannot drift from what the handlers decode and write.
var requestSchemas = map[string]any{
	"CreateTenant": createTenantRequest{},
	"Grant":        grantRequest{},
	"UsageBatch":   usageBatchRequest{},
	"Reservation":  reserveRequest{},
	"Capture":      captureRequest{},
	"Adjustment":   adjustmentRequest{},
	"AutoReload":   autoReloadRequest{},
	"CreditLine":   creditLineRequest{},
	"Subscription": subscriptionRequest{},
	"VoidGrant":    voidGrantRequest{},
	"ReverseUsage": reverseRequest{},
	"Notices":      noticesRequest{},
	"GrantExpiry":  grantExpiryRequest{},
	"Settings":     settingsRequest{},
}

var responseSchemas = map[string]any{
	"GET /v1/balance":       balanceJSON{},
	"GET /v1/ledger":        ledgerJSON{},
	"GET /v1/usage":         usageReportJSON{},
	"GET /v1/stats":         statsJSON{},
	"GET /v1/audit/verify":  audit.Report{},
	"GET /v1/summary":       summaryJSON{},
	"POST /v1/tenants":      tenantResponse{},
	"POST /v1/grants":       grantResponse{},
	"POST /v1/usage":        usageBatchResponse{},
	"POST /v1/adjustments":  adjustmentResponse{},
	"POST /v1/reservations": reservationResponse{},
	"POST /v1/reservations/{reservation_id}/capture": reservationResponse{},
	"POST /v1/reservations/{reservation_id}/release": reservationResponse{},
	"PUT /v1/auto-reload":                            autoReloadResponse{},
	"POST /v1/subscriptions":                         subscriptionResponse{},
	"DELETE /v1/subscriptions/{subscription_id}":     subscriptionResponse{},
	"PUT /v1/settings":                               settingsResponse{},
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

var (
	openapiOnce sync.Once
	openapiDoc  map[string]any
)

func (a *API) openapi(w http.ResponseWriter, r *http.Request) {
	openapiOnce.Do(func() { openapiDoc = a.openapiDocument() })
	writeJSON(w, http.StatusOK, openapiDoc)
}

// openapiDocument describes every route of the table.
func (a *API) openapiDocument() map[string]any {
	schemas := map[string]any{"Problem": schemaOf(reflect.TypeOf(Problem{}))}
	for name, v := range requestSchemas {
		schemas[name] = schemaOf(reflect.TypeOf(v))
	}
	paths := map[string]any{}
	for _, rt := range a.routes {
		op := map[string]any{"summary": rt.summary, "operationId": operationID(rt)}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		query := rt.query
		if rt.method == http.MethodGet && rt.auth == authTenant {
			query = append(append([]string(nil), query...), minPositionParam)
		}
		for _, q := range query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if rt.dimensionFilters {
			params = append(params, map[string]any{"name": "{dimension}", "in": "query", "description": "filter on a usage dimension: credit_type, module, service, user_id, workflow_id, workflow_run_id, endpoint, success or custom.<key>; repeat for any of several values", "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		switch rt.auth {
		case authAdmin:
			op["security"] = []any{map[string]any{"adminToken": []any{}}}
		case authTenant:
			op["security"] = []any{map[string]any{"apiKey": []any{}}}
		}
		if rt.body != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/" + rt.body}}}}
		}
		ok := map[string]any{"description": "success"}
		if v, found := responseSchemas[rt.method+" "+rt.path]; found {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(v))}}
		}
		problem := map[string]any{"description": "an RFC 7807 problem", "content": map[string]any{
			"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
		op["responses"] = map[string]any{"2XX": ok, "4XX": problem, "5XX": problem}
		item, _ := paths[rt.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.path] = item
		}
		item[strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "creditd", "version": "1",
			"description": "Event-sourced credit accounting. Amounts are exact decimals: JSON numbers (or decimal strings in requests) with at most 6 decimal places."},
		"paths": paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"apiKey":     map[string]any{"type": "http", "scheme": "bearer", "description": "a tenant's API key"},
				"adminToken": map[string]any{"type": "http", "scheme": "bearer", "description": "the server's admin token"},
			},
		},
	}
}

func operationID(rt route) string {
	id := strings.ToLower(rt.method) + strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(rt.path)
	return id
}

var (
	amountType    = reflect.TypeOf(Amount{})
	timestampType = reflect.TypeOf(Timestamp{})
	numberType    = reflect.TypeOf(Number{})
	timeType      = reflect.TypeOf(time.Time{})
)

// schemaOf derives a JSON Schema from a Go type's JSON encoding.
func schemaOf(t reflect.Type) map[string]any {
	switch t {
	case amountType:
		return map[string]any{"type": []string{"number", "string"}, "description": "decimal, at most 6 places"}
	case numberType:
		return map[string]any{"type": "number", "description": "exact decimal"}
	case timestampType, timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem())
		if typ, ok := s["type"].(string); ok {
			s["type"] = []string{typ, "null"}
		}
		return s
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Uint32:
		return map[string]any{"type": "integer"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{} // raw JSON
		}
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		props := map[string]any{}
		addStructFields(t, props)
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}

func addStructFields(t reflect.Type, props map[string]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && tag == "" {
			addStructFields(f.Type, props)
			continue
		}
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type)
	}
}
