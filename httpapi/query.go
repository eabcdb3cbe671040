package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// queryParamsMax bounds the parameters of one query string. net/url's own
// limit (10000) drops every parameter when passed, and the routes take a
// few each (the usage report's dimension filters the most).
const queryParamsMax = 100

// queryProblems reads a raw query string the way net/url does and lists
// what net/url would drop silently: a semicolon, a broken %-escape,
// invalid UTF-8, parameters past queryParamsMax; and a parameter given
// twice unless repeatable says it takes a list. Dropping any of them would
// answer another question than the one asked (an unfiltered report).
func queryProblems(raw string, repeatable func(name string) bool) []ProblemError {
	var out []ProblemError
	seen := map[string]bool{}
	count := 0
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		count++
		rawName, rawValue, _ := strings.Cut(part, "=")
		name, nameErr := url.QueryUnescape(rawName)
		// A name that decodes to invalid UTF-8 is located as written: its
		// decoded bytes would come back as U+FFFD, naming nothing.
		nameInvalid := nameErr == nil && !utf8.ValidString(name)
		if nameErr != nil || nameInvalid {
			name = rawName
		}
		location := "query." + name
		if name == "" {
			// No name to locate it by: the text itself is the location.
			location = "query." + part
		}
		if count > queryParamsMax {
			out = append(out, ProblemError{Location: location, Message: fmt.Sprintf("is past the limit of %d parameters", queryParamsMax)})
			break
		}
		value, valueErr := url.QueryUnescape(rawValue)
		switch {
		case strings.Contains(part, ";"):
			out = append(out, ProblemError{Location: location, Message: "holds a semicolon: separate parameters with & and write a semicolon in a value as %3B", Value: part})
		case name == "":
			out = append(out, ProblemError{Location: location, Message: "is a value without a parameter name"})
		case nameErr != nil:
			out = append(out, ProblemError{Location: location, Message: "is a name with a broken %-escape"})
		case nameInvalid:
			out = append(out, ProblemError{Location: location, Message: "is a name that is not valid UTF-8"})
		case valueErr != nil:
			out = append(out, ProblemError{Location: location, Message: "has a broken %-escape", Value: rawValue})
		case !utf8.ValidString(value):
			out = append(out, ProblemError{Location: location, Message: "is not valid UTF-8", Value: rawValue})
		case seen[name] && !repeatable(name):
			out = append(out, ProblemError{Location: location, Message: "is given more than once; it takes one value"})
		}
		seen[name] = true
	}
	return out
}

// queryStringProblem is the 400 for a query string with problems, nil
// when it has none.
func queryStringProblem(raw string, repeatable func(name string) bool) *Problem {
	errs := queryProblems(raw, repeatable)
	if len(errs) == 0 {
		return nil
	}
	p := newProblem(http.StatusBadRequest, "invalid-request", "the query string does not say one thing")
	p.Errors = errs
	return p
}
