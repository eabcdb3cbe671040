package httpapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi/compat"
)

// The document is built from the route table and, by kin-openapi's
// openapi3gen, from the Go types the handlers decode and write, so its
// schemas cannot drift from them. Its truth is tested: every test server
// holds each exchange against it (internal/openapicheck).
//
// Struct tags refine what reflection cannot see:
//   - required:"true" on a request field the server refuses to go without
//     (a response field is required unless omitempty);
//   - enum:"a,b" lists a string's values;
//   - pattern:"…" constrains a string;
//   - types:"object,null" and format:"…" type raw JSON (json.RawMessage).

// requestSchemas name the request bodies (route.body).
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

// responseSchemas are each native JSON route's success body; a compat
// route carries its own (route.response).
var responseSchemas = map[string]any{
	"GET /healthz":                          healthResponse{},
	"GET /readyz":                           readyResponse{},
	"GET /v1/balance":                       balanceJSON{},
	"GET /v1/ledger":                        ledgerJSON{},
	"GET /v1/usage":                         usageReportJSON{},
	"GET /v1/stats":                         statsJSON{},
	"GET /v1/audit/verify":                  audit.Report{},
	"GET /v1/summary":                       summaryJSON{},
	"GET /v1/notices":                       noticesResponse{},
	"PUT /v1/notices":                       noticesResponse{},
	"POST /v1/tenants":                      tenantResponse{},
	"POST /v1/tenants/{tenant_id}/api-keys": apiKeyResponse{},
	"DELETE /v1/tenants/{tenant_id}/api-keys/{key_id}": revokedKeyResponse{},
	"POST /v1/checkpoints":                             checkpointResponse{},
	"POST /v1/grants":                                  grantResponse{},
	"POST /v1/grants/{grant_id}/void":                  grantAmendResponse{},
	"PATCH /v1/grants/{grant_id}":                      grantAmendResponse{},
	"POST /v1/usage":                                   usageBatchResponse{},
	"POST /v1/usage/{usage_id}/reverse":                reverseResponse{},
	"POST /v1/adjustments":                             adjustmentResponse{},
	"POST /v1/reservations":                            reservationResponse{},
	"POST /v1/reservations/{reservation_id}/capture":   reservationResponse{},
	"POST /v1/reservations/{reservation_id}/release":   reservationResponse{},
	"PUT /v1/auto-reload":                              autoReloadResponse{},
	"PUT /v1/credit-lines/{credit_type}":               creditLineResponse{},
	"POST /v1/subscriptions":                           subscriptionResponse{},
	"DELETE /v1/subscriptions/{subscription_id}":       subscriptionResponse{},
	"PUT /v1/settings":                                 settingsResponse{},
}

// createdRoutes answer 201 for a new resource and 200 for a repeat of the
// same id and body (createdStatus).
var createdRoutes = []string{
	"POST /v1/tenants", "POST /v1/tenants/{tenant_id}/api-keys", "POST /v1/checkpoints",
	"POST /v1/grants", "POST /v1/reservations", "POST /v1/adjustments", "POST /v1/subscriptions",
}

// routeProblems are the statuses a route answers beyond those of its kind
// (routeResponses): 402 insufficient credits, 404 an unknown id, 409 a
// state or an id conflict (problemFor), 503 a read model not there yet.
var routeProblems = map[string][]int{
	"POST /v1/tenants":                                 {409},
	"POST /v1/tenants/{tenant_id}/api-keys":            {404},
	"DELETE /v1/tenants/{tenant_id}/api-keys/{key_id}": {404},
	"POST /v1/grants":                                  {409},
	"POST /v1/grants/{grant_id}/void":                  {404, 409},
	"PATCH /v1/grants/{grant_id}":                      {404, 409},
	"POST /v1/usage":                                   {409},
	"POST /v1/usage/{usage_id}/reverse":                {404, 409},
	"POST /v1/reservations":                            {402, 409},
	"POST /v1/reservations/{reservation_id}/capture":   {402, 404, 409},
	"POST /v1/reservations/{reservation_id}/release":   {404, 409},
	"POST /v1/adjustments":                             {402, 409},
	"POST /v1/subscriptions":                           {409},
	"DELETE /v1/subscriptions/{subscription_id}":       {404, 409},
	"GET /v1/audit/verify":                             {503},
	"GET /dashboard/{file}":                            {404},
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

var (
	openapiOnce sync.Once
	openapiJSON []byte
	openapiErr  error
)

// openapi serves the document, built once: the ingest path never pays
// for it.
func (a *API) openapi(w http.ResponseWriter, r *http.Request) {
	openapiOnce.Do(func() { openapiJSON, openapiErr = json.Marshal(a.openapiDocument()) })
	if openapiErr != nil {
		writeProblem(w, r, a.log, openapiErr)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapiJSON)
}

// openapiDocument describes every route of the table.
func (a *API) openapiDocument() *openapi3.T {
	components := openapi3.NewComponents()
	components.Schemas = openapi3.Schemas{"Problem": responseSchema(Problem{}),
		// The compat profiles' other error shapes (compat.ErrorShape).
		"ErrorModel": responseSchema(errorModel{}), "ErrorObject": responseSchema(errorObject{})}
	for name, v := range requestSchemas {
		components.Schemas[name] = requestSchema(v)
	}
	components.SecuritySchemes = openapi3.SecuritySchemes{
		"apiKey":     {Value: openapi3.NewJWTSecurityScheme().WithBearerFormat("").WithDescription("a tenant's API key")},
		"adminToken": {Value: openapi3.NewJWTSecurityScheme().WithBearerFormat("").WithDescription("the server's admin token")},
		// tamtam's clients may send the key bare, as its seed allows.
		"bareKey": {Value: openapi3.NewSecurityScheme().WithType("apiKey").WithIn("header").WithName("Authorization").WithDescription("a tenant's API key, bare")},
	}
	for _, scheme := range []string{"apiKey", "adminToken"} {
		components.SecuritySchemes[scheme].Value.BearerFormat = ""
	}
	doc := &openapi3.T{
		OpenAPI: "3.1.0",
		Info: &openapi3.Info{Title: "creditd", Version: "1",
			Description: "Event-sourced credit accounting. Amounts are exact decimals: JSON numbers (or decimal strings in requests) with at most 6 decimal places. " +
				"A request body is read as JSON whatever its Content-Type; unknown members, duplicate members and invalid UTF-8 are refused. " +
				"Errors are RFC 7807 problems (application/problem+json), except where a compat profile's seed documents another shape."},
		Paths:      openapi3.NewPaths(),
		Components: &components,
	}
	for _, rt := range a.routes {
		item := doc.Paths.Value(rt.path)
		if item == nil {
			item = &openapi3.PathItem{}
			doc.Paths.Set(rt.path, item)
		}
		item.SetOperation(rt.method, a.operation(rt))
	}
	return doc
}

func (a *API) operation(rt route) *openapi3.Operation {
	key := rt.method + " " + rt.path
	op := &openapi3.Operation{Summary: rt.summary, OperationID: operationID(rt), Responses: routeResponses(rt)}
	for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
		op.AddParameter(openapi3.NewPathParameter(m[1]).WithSchema(openapi3.NewStringSchema()))
	}
	for _, name := range rt.query {
		op.AddParameter(queryParameter(rt, name))
	}
	tenantRead := rt.method == http.MethodGet && rt.auth == authTenant
	if tenantRead {
		op.AddParameter(openapi3.NewQueryParameter(minPositionParam).WithSchema(positionSchema()).
			WithDescription("wait (at most 5 s, then 503) until the read models include this position, returned by a write"))
		op.AddParameter(openapi3.NewHeaderParameter(minPositionHeader).WithSchema(positionSchema()).
			WithDescription("the header form of min_position"))
	}
	if rt.dimensionFilters {
		// custom.<key> filters cannot be named in OpenAPI: they are
		// described here and accepted by the server.
		op.Description = "Any usage dimension filters: credit_type, module, service, user_id, workflow_id, workflow_run_id, endpoint, success or custom.<key>; repeat a parameter (or separate values with commas) for any of several values."
		for _, name := range []string{"credit_type", "module", "service", "user_id", "workflow_id", "workflow_run_id", "endpoint", "success"} {
			p := openapi3.NewQueryParameter(name).WithSchema(openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema()))
			p.Explode = openapi3.Ptr(true)
			op.AddParameter(p)
		}
	}
	if rt.method == http.MethodPost {
		op.AddParameter(openapi3.NewHeaderParameter(idempotencyKeyHeader).
			WithSchema(openapi3.NewStringSchema().WithMaxLength(domain.IDLengthMax)).
			WithDescription("the write's id: equal to the body's or path's id when both are given, the id when alone; on POST /v1/usage it keys the whole batch"))
	}
	switch rt.auth {
	case authAdmin:
		op.Security = openapi3.NewSecurityRequirements().With(openapi3.NewSecurityRequirement().Authenticate("adminToken"))
	case authTenant:
		op.Security = openapi3.NewSecurityRequirements().With(openapi3.NewSecurityRequirement().Authenticate("apiKey"))
		if rt.bareKey {
			op.Security.With(openapi3.NewSecurityRequirement().Authenticate("bareKey"))
		}
	}
	if rt.body != "" {
		// A capture without a body captures the whole hold.
		required := key != "POST /v1/reservations/{reservation_id}/capture"
		op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(required).
			WithJSONSchemaRef(openapi3.NewSchemaRef("#/components/schemas/"+rt.body, nil))}
	}
	return op
}

// routeResponses are a route's answers: its success, and the problems of
// its kind plus routeProblems.
func routeResponses(rt route) *openapi3.Responses {
	key := rt.method + " " + rt.path
	responses := openapi3.NewResponses()
	responses.Delete("default")
	success := openapi3.NewResponse().WithDescription("success")
	switch {
	case key == "GET /dashboard":
		success.Content = openapi3.Content{"text/html": openapi3.NewMediaType()}
	case key == "GET /dashboard/{file}":
		success.Content = openapi3.Content{"*/*": openapi3.NewMediaType()}
	case key == "GET /openapi.json":
		success.Content = openapi3.NewContentWithJSONSchema(openapi3.NewObjectSchema())
	case rt.response != nil:
		success.Content = openapi3.NewContentWithJSONSchemaRef(responseSchema(rt.response))
	default:
		success.Content = openapi3.NewContentWithJSONSchemaRef(responseSchema(responseSchemas[key]))
	}
	if rt.method == http.MethodGet && rt.auth == authTenant {
		success.Headers = openapi3.Headers{"X-Position": headerRef(positionSchema(), false, "the read models' position, when min_position was given")}
	}
	responses.Set("200", &openapi3.ResponseRef{Value: success})
	if slices.Contains(createdRoutes, key) {
		created := *success
		created.Description = openapi3.Ptr("created; a repeat of the same id and body answers 200 with the original")
		responses.Set("201", &openapi3.ResponseRef{Value: &created})
	}
	statuses := []int{http.StatusBadRequest, http.StatusInternalServerError}
	if rt.auth != authNone {
		statuses = append(statuses, http.StatusUnauthorized)
	}
	if rt.body != "" {
		statuses = append(statuses, http.StatusRequestEntityTooLarge)
	}
	if rt.auth == authTenant && rt.method == http.MethodGet {
		statuses = append(statuses, http.StatusServiceUnavailable) // min_position waited too long
	}
	if rt.auth != authNone && rt.method != http.MethodGet {
		statuses = append(statuses, http.StatusServiceUnavailable) // the event store is busy or away
	}
	statuses = append(statuses, routeProblems[key]...)
	if key == "GET /readyz" {
		// Unready is an answer, not a problem: the same body with 503.
		unready := *success
		unready.Description = openapi3.Ptr("not ready: the reason and the projection's last error")
		unready.Headers = nil
		responses.Set("503", &openapi3.ResponseRef{Value: &unready})
	}
	mediaType, schema := "application/problem+json", "Problem"
	switch rt.errors.Shape {
	case compat.ErrorShapeErrorModel:
		schema = "ErrorModel"
	case compat.ErrorShapeErrorObject:
		mediaType, schema = "application/json", "ErrorObject"
	}
	problems := map[int]*openapi3.Response{}
	for _, answered := range statuses {
		status := rt.errors.Status(answered)
		code := strconv.Itoa(status)
		problem := problems[status]
		if problem == nil {
			if responses.Value(code) != nil {
				continue
			}
			problem = openapi3.NewResponse().WithDescription(http.StatusText(status)).
				WithContent(openapi3.Content{mediaType: openapi3.NewMediaType().WithSchemaRef(openapi3.NewSchemaRef("#/components/schemas/"+schema, nil))})
			problem.Headers = openapi3.Headers{}
			problems[status] = problem
			responses.Set(code, &openapi3.ResponseRef{Value: problem})
		}
		switch {
		case answered == http.StatusServiceUnavailable:
			// Also, optional, on the 500 of a profile whose seed has no 503.
			problem.Headers["Retry-After"] = headerRef(openapi3.NewIntegerSchema().WithMin(0), status == answered, "seconds to wait before retrying with the same ids")
		case status == http.StatusUnauthorized:
			problem.Headers["WWW-Authenticate"] = headerRef(openapi3.NewStringSchema(), true, "")
		}
	}
	for _, problem := range problems {
		if len(problem.Headers) == 0 {
			problem.Headers = nil
		}
	}
	return responses
}

func headerRef(schema *openapi3.Schema, required bool, description string) *openapi3.HeaderRef {
	return &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
		Schema: schema.NewRef(), Required: required, Description: description}}}
}

func positionSchema() *openapi3.Schema {
	return openapi3.NewIntegerSchema().WithMin(0).WithFormat("int64")
}

// instantSchema is a query time: RFC 3339, or a date meaning the day's
// start (from) or end (to).
func instantSchema() *openapi3.Schema {
	s := openapi3.NewStringSchema()
	s.AnyOf = openapi3.SchemaRefs{openapi3.NewDateTimeSchema().NewRef(), openapi3.NewStringSchema().WithFormat("date").NewRef()}
	return s
}

// queryParameter describes one of a route's query parameters by its name.
func queryParameter(rt route, name string) *openapi3.Parameter {
	var schema *openapi3.Schema
	switch name {
	case "from", "to", "as_of", "start_date", "end_date":
		schema = instantSchema()
		if c, ok := compat.RouteAt(rt.method, rt.path); rt.compat && ok && c.ISOTimes {
			schema = openapi3.NewStringSchema().WithPattern(compat.ISOTimePattern)
			schema.Description = "ISO 8601: a date (a whole UTC day) or a date-time, seconds, fraction and zone optional (no zone is UTC)"
		}
	case "limit":
		schema = openapi3.NewIntegerSchema().WithMin(1).WithMax(100)
		if c, ok := compat.RouteAt(rt.method, rt.path); rt.compat && ok && c.LimitCapped {
			schema = openapi3.NewIntegerSchema().WithMin(1)
			schema.Description = "at most 100 entries: a larger limit reads as 100"
		}
	case "offset":
		schema = openapi3.NewIntegerSchema().WithMin(0)
	case "granularity":
		schema = openapi3.NewStringSchema().WithEnum("none", "day", "month", "year")
	case "scope":
		schema = openapi3.NewStringSchema().WithEnum(readyScopeWrites, readyScopeReads)
		schema.Description = "ask one side: writes (accepted once the write side is loaded, before the read models catch up) or reads; absent, both"
	case "period":
		schema = openapi3.NewStringSchema().WithEnum("daily", "monthly", "yearly")
	case "group_by":
		schema = openapi3.NewStringSchema()
		schema.Description = "comma-separated dimensions: credit_type, module, service, user_id, workflow_id, workflow_run_id, endpoint, success or custom.<key>"
	case "type":
		if slices.Contains(rt.lists, name) { // the native ledger: several, repeated or comma-separated
			schema = openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema().WithPattern(`^(credit|debit|adjustment|expiry)(,(credit|debit|adjustment|expiry))*$`))
		} else {
			schema = openapi3.NewStringSchema().WithEnum("credit", "debit", "adjustment")
		}
	default:
		schema = openapi3.NewStringSchema()
	}
	p := openapi3.NewQueryParameter(name).WithSchema(schema)
	p.Required = slices.Contains(rt.requiredQuery, name)
	return p
}

func operationID(rt route) string {
	return strings.ToLower(rt.method) + strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(rt.path)
}

var (
	amountType    = reflect.TypeOf(Amount{})
	timestampType = reflect.TypeOf(Timestamp{})
	numberType    = reflect.TypeOf(Number{})
	rawType       = reflect.TypeOf(json.RawMessage{})
)

func requestSchema(v any) *openapi3.SchemaRef  { return schemaOf(v, true) }
func responseSchema(v any) *openapi3.SchemaRef { return schemaOf(v, false) }

// schemaOf derives the schema of v's JSON encoding (a response) or of what
// the server decodes into v (a request).
func schemaOf(v any, request bool) *openapi3.SchemaRef {
	ref, err := openapi3gen.NewSchemaRefForValue(v, nil, openapi3gen.SchemaCustomizer(
		func(name string, t reflect.Type, tag reflect.StructTag, schema *openapi3.Schema) error {
			refine(t, tag, schema, request)
			return nil
		}))
	if err != nil {
		panic("openapi: " + err.Error()) // a type the generator cannot describe is a programmer error
	}
	return ref
}

// refine completes a generated schema with what reflection cannot see.
func refine(t reflect.Type, tag reflect.StructTag, schema *openapi3.Schema, request bool) {
	switch t {
	case amountType:
		// null leaves an amount unset; a required one is then refused.
		schema.Type = &openapi3.Types{"number", "string", "null"}
		schema.Description = "an exact decimal, at most 6 places: a JSON number or a decimal string"
	case timestampType:
		schema.Type, schema.Format = &openapi3.Types{"string", "null"}, "date-time"
	case numberType:
		schema.Type, schema.Description = &openapi3.Types{"number"}, "an exact decimal"
	case rawType:
		// Free JSON: metadata, currency_config, a nullable expiry.
	}
	if enum := tag.Get("enum"); enum != "" {
		for _, v := range strings.Split(enum, ",") {
			schema.Enum = append(schema.Enum, v)
		}
	}
	if types := tag.Get("types"); types != "" { // raw JSON of known types
		schema.Type = &openapi3.Types{}
		*schema.Type = strings.Split(types, ",")
	}
	if format := tag.Get("format"); format != "" {
		schema.Format = format
	}
	if t.Kind() == reflect.Uint64 {
		schema.Max = nil // 2^64-1 is no float64: positions fit int64
	}
	if pattern := tag.Get("pattern"); pattern != "" {
		schema.Pattern = pattern
	}
	if schema.Nullable {
		// openapi3gen speaks OpenAPI 3.0 (nullable); this is 3.1.
		schema.Nullable = false
		if schema.Type != nil && !schema.Type.Includes("null") {
			*schema.Type = append(*schema.Type, "null")
		}
	}
	if !request && (t.Kind() == reflect.Slice || t.Kind() == reflect.Map) && t != rawType && schema.Type != nil && !schema.Type.Includes("null") {
		// encoding/json writes a nil slice or map as null.
		*schema.Type = append(*schema.Type, "null")
	}
	if t.Kind() == reflect.Struct && schema.Properties != nil {
		// Requests refuse unknown members; responses have no others.
		schema.AdditionalProperties = openapi3.AdditionalProperties{Has: openapi3.Ptr(false)}
		for _, f := range jsonFields(t) {
			name, options, _ := strings.Cut(f.Tag.Get("json"), ",")
			if request && f.Tag.Get("required") == "true" || !request && !slices.Contains(strings.Split(options, ","), "omitempty") {
				schema.Required = append(schema.Required, name)
			}
		}
	}
}

// jsonFields are the fields of t's JSON object, embedded structs flattened.
func jsonFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		switch {
		case f.Anonymous && tag == "":
			out = append(out, jsonFields(f.Type)...)
		case tag == "" || tag == "-" || !f.IsExported():
		default:
			out = append(out, f)
		}
	}
	return out
}
