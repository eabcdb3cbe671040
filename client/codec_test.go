package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// trickyStrings exercise every escaping rule of encoding/json.
var trickyStrings = []string{
	"", "req-1", `quote " backslash \ slash /`, "<script>&amp;</script>",
	"\b\f\n\r\t\x00\x01\x1f\x7f", "\u2028\u2029", "é ü 日本 🎉", "\xff\xfe", "a\xc3", "\xed\xa0\x80",
	"\ufffd", "'", "<>&\u2028",
}

func TestAppendUsageEventMatchesMarshal(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	zoned := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("X", -(9*3600+30*60)))
	yes, no := true, false
	qty := decimal.RequireFromString("12.500")
	events := []UsageEvent{
		{},
		{ID: "req-1", Amount: decimal.RequireFromString("2.5"), Module: "search"},
		{ID: "e", Timestamp: &ts, Amount: decimal.New(-125, -2), CreditType: "credits", Module: "m", Service: "s",
			UserID: "u", WorkflowID: "w", WorkflowRunID: "r", Endpoint: "/v1/x", Success: &no, Quantity: &qty,
			Custom: map[string]string{"b": "2", "a": "1", "": "empty", "B": "<"}, Description: "d"},
		{ID: "z", Timestamp: &zoned, Success: &yes, Custom: map[string]string{}},
	}
	for _, s := range trickyStrings {
		events = append(events, UsageEvent{ID: s, Module: s, Description: s, Custom: map[string]string{s: s, s + "x": ""}})
	}
	big := map[string]string{}
	for i := range 40 {
		big[strconv.Itoa(i*7919%1000)] = strconv.Itoa(i)
	}
	events = append(events, UsageEvent{ID: "big", Custom: big})
	for _, year := range []int{-1, 0, 9999, 10000} {
		tm := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		events = append(events, UsageEvent{ID: "y", Timestamp: &tm})
	}
	for _, offset := range []int{23*3600 + 59*60, 24 * 3600, -24 * 3600, 100 * 3600} {
		tm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", offset))
		events = append(events, UsageEvent{ID: "tz", Timestamp: &tm})
	}
	for _, ev := range events {
		checkAppendUsageEvent(t, ev)
	}
}

func TestAppendDecimalMatchesMarshal(t *testing.T) {
	huge, _ := new(big.Int).SetString("-123456789012345678901234567890", 10)
	values := []decimal.Decimal{{}, decimal.New(0, -5), decimal.New(0, 7), decimal.New(12300, -2), decimal.New(-5, -9),
		decimal.New(1, 64), decimal.New(1, 65), decimal.New(-7, -64), decimal.New(7, -65), decimal.New(999999999999999999, -3),
		decimal.New(-1000000000000000000, 2), decimal.NewFromBigInt(huge, -12), decimal.New(120, 1),
		decimal.RequireFromString("0.000100"), decimal.RequireFromString("-1e-30")}
	for mode := range 8 {
		setDecimalMode(t, mode)
		for _, v := range values {
			checkAppendUsageEvent(t, UsageEvent{Amount: v, Quantity: &v})
		}
	}
}

// setDecimalMode sets decimal's package options from the bits of mode
// and restores them when t ends.
func setDecimalMode(t testing.TB, mode int) {
	unquoted, trim, scientific := decimal.MarshalJSONWithoutQuotes, decimal.TrimTrailingZeros, decimal.UseScientificNotation
	t.Cleanup(func() {
		decimal.MarshalJSONWithoutQuotes, decimal.TrimTrailingZeros, decimal.UseScientificNotation = unquoted, trim, scientific
	})
	decimal.MarshalJSONWithoutQuotes = mode&1 != 0
	decimal.TrimTrailingZeros = mode&2 == 0
	decimal.UseScientificNotation = mode&4 != 0
}

func checkAppendUsageEvent(t *testing.T, ev UsageEvent) {
	t.Helper()
	want, wantErr := json.Marshal(ev)
	prefix := []byte("prefix,")
	got, err := appendUsageEvent(prefix, ev)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%#v: error %v, json.Marshal's %v", ev, err, wantErr)
	}
	if err != nil {
		if err.Error() != wantErr.Error() {
			t.Fatalf("error %q, json.Marshal's %q", err, wantErr)
		}
		return
	}
	if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("%#v:\n got %q\nwant %q", ev, got, want)
	}
}

func TestAppendUsageEventAllocatesOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	ev := benchmarkEvent()
	if n := testing.AllocsPerRun(100, func() {
		if _, err := appendUsageEvent(nil, ev); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("appendUsageEvent allocates %v times, want at most 1", n)
	}
}

func FuzzAppendUsageEvent(f *testing.F) {
	f.Add("req-1", "credits|search|api|user-7|wf|run|/v1/search", "env|prod|region|eu", "a search", int64(1767225600), int32(123456789), int16(0), int64(25), int8(-1), int64(3), int8(0), uint16(0b0000_1111))
	f.Add("", "", "", "", int64(0), int32(0), int16(0), int64(0), int8(0), int64(0), int8(0), uint16(0))
	f.Add("<a&b>", "\u2028|\xff|\"|\\", "\x00|\n|<|>", "\xed\xa0\x80", int64(-62167219200), int32(0), int16(-1439), int64(-7), int8(-20), int64(1), int8(30), uint16(0xffff))
	f.Add("y", "m", "k|v", "", int64(253402300800), int32(0), int16(1440), int64(9), int8(100), int64(1), int8(-100), uint16(0b1_0111_0001))
	for i, s := range trickyStrings {
		f.Add(s, s+"|"+s, s+"|"+s, s, int64(i)*1e9, int32(i), int16(i*60), int64(i), int8(-i), int64(-i), int8(i), uint16(i*37))
	}
	f.Fuzz(func(t *testing.T, id, dims, custom, description string, sec int64, nsec int32, zoneMinutes int16,
		amount int64, amountExp int8, quantity int64, quantityExp int8, flags uint16) {
		setDecimalMode(t, int(flags>>8&7))
		checkAppendUsageEvent(t, fuzzedEvent(id, dims, custom, description, sec, nsec, zoneMinutes, amount, amountExp, quantity, quantityExp, flags))
	})
}

// fuzzedEvent builds an event from fuzzed parts: dims and custom are split
// on '|' into the dimensions and the custom keys and values; the bits of
// flags choose the optional fields.
func fuzzedEvent(id, dims, custom, description string, sec int64, nsec int32, zoneMinutes int16,
	amount int64, amountExp int8, quantity int64, quantityExp int8, flags uint16) UsageEvent {
	ev := UsageEvent{ID: id, Amount: decimal.New(amount, int32(amountExp)), Description: description}
	if flags&1 != 0 {
		ts := time.Unix(sec, int64(nsec)).In(time.FixedZone("zone", int(zoneMinutes)*60))
		ev.Timestamp = &ts
	}
	if flags&2 != 0 {
		success := flags&4 != 0
		ev.Success = &success
	}
	if flags&8 != 0 {
		q := decimal.New(quantity, int32(quantityExp))
		ev.Quantity = &q
	}
	if flags&16 != 0 {
		// A coefficient beyond int64 takes Decimal.String's path.
		v := new(big.Int).Mul(big.NewInt(amount), new(big.Int).Lsh(big.NewInt(1), 70))
		ev.Amount = decimal.NewFromBigInt(v, int32(amountExp))
	}
	if flags&32 != 0 {
		ev.Module = dims // whole, with its '|'
	} else {
		parts := strings.Split(dims, "|")
		for i, field := range []*string{&ev.CreditType, &ev.Module, &ev.Service, &ev.UserID, &ev.WorkflowID, &ev.WorkflowRunID, &ev.Endpoint} {
			if i < len(parts) {
				*field = parts[i]
			}
		}
	}
	if flags&64 != 0 || custom != "" {
		ev.Custom = map[string]string{}
		parts := strings.Split(custom, "|")
		for i := 0; i+1 < len(parts); i += 2 {
			ev.Custom[parts[i]] = parts[i+1]
		}
		if flags&128 != 0 {
			ev.Custom[custom] = id
		}
	}
	return ev
}

// serverAnswer is an answer shaped as creditd's (counts around the
// results) for n events.
func serverAnswer(n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"accepted":%d,"duplicates":1,"rejected":1,"conflicts":0,"results":[`, n-2)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		switch i {
		case 1:
			fmt.Fprintf(&b, `{"id":"evt-%06d","status":"duplicate","duplicate":true,"position":%d}`, i, 1000+i)
		case 2:
			fmt.Fprintf(&b, `{"id":"evt-%06d","status":"rejected","reason":"insufficient_credits"}`, i)
		default:
			fmt.Fprintf(&b, `{"id":"evt-%06d","status":"accepted","position":%d}`, i, 184467440737+i)
		}
	}
	b.WriteString(`],"position":184467440900}`)
	return []byte(b.String())
}

// answerSeeds are realistic answers and inputs at the edges of what
// encoding/json accepts.
var answerSeeds = []string{
	string(serverAnswer(3)),
	`{"results":[{"id":"a","status":"accepted","position":1}]}`,
	` {"results" : [ {"id" : "a" , "status":"conflict","reason":"id_conflict"} , null ] } ` + "\n",
	`{"results":[]}`, `{"results":null}`, `null`, `{}`, `[]`, `"x"`, `1`, `true`, ``, ` `,
	`{"RESULTS":[{"ID":"a","Status":"b","REASON":"c","Duplicate":true,"POSITION":2}]}`,
	`{"re\u017fult\u017f":[{"id":"\u017f"}]}`, "{\"reſultſ\":[{\"id\":\"a\"}]}", `{"r\u0065sults":[{"i\u0064":"x"}]}`,
	`{"results":[{"id":"a","position":1},{"id":"b"}],"results":[{"status":"s"}],"results":[{},{}]}`,
	`{"results":[{"id":"a"}],"results":[]}`, `{"results":[{"id":"a"}],"results":null}`,
	`{"results":[{"id":"a","id":"b","id":null,"duplicate":true,"duplicate":null,"position":null}]}`,
	`{"results":[{"id":"\ud83c\udf89 \ud800 \udc00 \ud800\u0041 \u2028 \/ \b\f\n\r\t \" \\ \u00e9"}]}`,
	"{\"results\":[{\"id\":\"\xff\xfe a\xc3 \xed\xa0\x80\"}]}",
	`{"results":[{"id":"\x"}]}`, `{"results":[{"id":"\u12"}]}`, `{"results":[{"id":"\'"}]}`, "{\"results\":[{\"id\":\"\x01\"}]}",
	`{"results":[{"position":-1}]}`, `{"results":[{"position":1.0}]}`, `{"results":[{"position":1e2}]}`,
	`{"results":[{"position":18446744073709551615}]}`, `{"results":[{"position":18446744073709551616}]}`,
	`{"results":[{"position":18446744073709551620}]}`, `{"results":[{"position":0,"Position":99999999999999999999}]}`,
	`{"results":[{"position":01}]}`, `{"results":[{"position":"1"}]}`, `{"results":[{"duplicate":"true"}]}`,
	`{"results":[{"id":1}]}`, `{"results":[1]}`, `{"results":{}}`, `{"results":"x"}`, `{"results":[{"id":"a"}]} x`,
	`{"results":[{"id":"a"},]}`, `{"results":[{"id":"a",}]}`, `{"results":[{"id" "a"}]}`, `{"results":[{"id":"a"}`,
	`{"other":{"a":[1,-2.5e+3,true,false,null,{"b":[]}]},"results":[{"id":"a","extra":[[[]]]}]}`,
	`{"other":tru}`, `{"other":-}`, `{"other":1.}`, `{"other":1e}`, `{"other":.5}`, `{"other":+1}`, `{"other":nul}`,
	"\ufeff{}", `{"results":[{"id":"a"}]}` + "\x00",
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
}

func TestDecodeResultsMatchesUnmarshal(t *testing.T) {
	for _, s := range answerSeeds {
		checkDecodeResults(t, []byte(s))
	}
}

func checkDecodeResults(t *testing.T, data []byte) {
	t.Helper()
	var want struct{ Results []Result }
	wantErr := json.Unmarshal(data, &want)
	got, err := decodeResults(data, 2)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%.200q: error %v, json.Unmarshal's %v", data, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want.Results) {
		t.Fatalf("%.200q:\n got %#v\nwant %#v", data, got, want.Results)
	}
}

func TestParseUintMatchesStrconv(t *testing.T) {
	for _, s := range []string{"0", "7", "42", "18446744073709551609", "18446744073709551610", "18446744073709551615",
		"18446744073709551616", "18446744073709551619", "18446744073709551620", "28446744073709551615",
		"99999999999999999999", "184467440737095516150", "-1", "1.5", "1e3", "1E3", "-0"} {
		want, err := strconv.ParseUint(s, 10, 64)
		got, ok := parseUint([]byte(s))
		if ok != (err == nil) || ok && got != want {
			t.Errorf("parseUint(%q) = %d, %v; strconv: %d, %v", s, got, ok, want, err)
		}
	}
}

func TestDecodeResultsAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	data := serverAnswer(100)
	// The slice and the one copy of data the strings are cut from.
	if n := testing.AllocsPerRun(100, func() {
		if _, err := decodeResults(data, 100); err != nil {
			t.Fatal(err)
		}
	}); n > 2 {
		t.Errorf("decodeResults allocates %v times, want at most 2", n)
	}
}

func TestDecodeResultsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		results := make([]Result, rng.IntN(5))
		for i := range results {
			results[i] = Result{ID: randomString(rng), Status: randomString(rng), Reason: randomString(rng),
				Duplicate: rng.IntN(2) == 0, Position: rng.Uint64() >> rng.IntN(64)}
		}
		checkRoundTrip(t, results)
	}
}

func randomString(rng *rand.Rand) string {
	const alphabet = "ab\"\\/<>&\x00\x1f\u00e9\u2028\U0001f389\xff"
	b := make([]byte, rng.IntN(12))
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// checkRoundTrip encodes results with encoding/json, as the server does,
// and decodes them back; invalid UTF-8 comes back as U+FFFD per byte.
func checkRoundTrip(t *testing.T, results []Result) {
	t.Helper()
	encoded, err := json.Marshal(results)
	if err != nil {
		t.Fatal(err)
	}
	data := append(append([]byte(`{"accepted":1,"results":`), encoded...), `,"position":3}`...)
	got, err := decodeResults(data, len(results))
	if err != nil {
		t.Fatalf("%q: %v", data, err)
	}
	want := make([]Result, len(results))
	for i, r := range results {
		r.ID, r.Status, r.Reason = string([]rune(r.ID)), string([]rune(r.Status)), string([]rune(r.Reason))
		want[i] = r
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", data, got, want)
	}
}

func FuzzDecodeResults(f *testing.F) {
	for i, s := range answerSeeds {
		f.Add([]byte(s), "evt-1", "accepted", "", uint64(i), i%2 == 0, uint8(i))
	}
	f.Add([]byte(`{"results":[{"id":"\u00e9"}]}`), "\xff<\u2028", "\"\\", "\x00", uint64(1)<<63, true, uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, id, status, reason string, position uint64, duplicate bool, count uint8) {
		checkDecodeResults(t, data)
		results := make([]Result, count%8)
		for i := range results {
			results[i] = Result{ID: id + strconv.Itoa(i), Status: status, Duplicate: duplicate != (i%3 == 0), Position: position >> i}
			if i%2 == 0 {
				results[i].Reason = reason
			}
		}
		checkRoundTrip(t, results)
	})
}

// TestOnlyTwoRunesFoldToASCII backs foldEqual: encoding/json folds each
// rune of a key to the least of its simple case folds, and only these two
// non-ASCII runes fold to an ASCII letter.
func TestOnlyTwoRunesFoldToASCII(t *testing.T) {
	for r := rune(utf8.RuneSelf); r <= unicode.MaxRune; r++ {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		if least < utf8.RuneSelf && r != '\u017f' && r != '\u212a' {
			t.Errorf("%U folds to %q", r, least)
		}
	}
}

func benchmarkEvent() UsageEvent {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	success := true
	qty := decimal.New(3, 0)
	return UsageEvent{ID: "0195b4b2-7c1e-7d3a-9f2e-5b8c1d2e3f40", Timestamp: &ts, Amount: decimal.New(125, -2),
		CreditType: "credits", Module: "search", Service: "api", UserID: "user-42", WorkflowID: "wf-7",
		WorkflowRunID: "run-9", Endpoint: "/v1/search", Success: &success, Quantity: &qty,
		Custom: map[string]string{"region": "eu-west-1", "plan": "pro", "env": "prod"}, Description: "search request"}
}

func BenchmarkAppendUsageEvent(b *testing.B) {
	ev := benchmarkEvent()
	b.Run("handwritten", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := appendUsageEvent(nil, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflective", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeResults(b *testing.B) {
	data := serverAnswer(100)
	b.Run("handwritten", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if results, err := decodeResults(data, 100); err != nil || len(results) != 100 {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflective", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var answer struct{ Results []Result }
			if err := json.Unmarshal(data, &answer); err != nil || len(answer.Results) != 100 {
				b.Fatal(err)
			}
		}
	})
}

// TestBatchBodyIsSizedExactly: the body holds the events as given, in one
// allocation of exactly its size.
func TestBatchBodyIsSizedExactly(t *testing.T) {
	for _, tc := range []struct {
		items []item
		want  string
	}{
		{nil, `{"events":[]}`},
		{[]item{{data: []byte(`{"id":"a"}`)}}, `{"events":[{"id":"a"}]}`},
		{[]item{{data: []byte(`{"id":"a"}`)}, {data: []byte(`{}`)}, {data: []byte(`{"id":"ü"}`)}}, `{"events":[{"id":"a"},{},{"id":"ü"}]}`},
	} {
		body := batchBody(tc.items)
		if string(body) != tc.want || cap(body) != len(body) {
			t.Errorf("batchBody = %q (cap %d), want %q (cap %d)", body, cap(body), tc.want, len(tc.want))
		}
	}
	items := make([]item, 100)
	for i := range items {
		items[i].data = []byte(`{"id":"u-0000000001","credit_type":"api_calls","amount":"0.002"}`)
	}
	if allocs := testing.AllocsPerRun(20, func() { batchBody(items) }); allocs != 1 {
		t.Errorf("batchBody of 100 events: %v allocations, want 1", allocs)
	}
}
