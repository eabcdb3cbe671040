package compat

import (
	"time"

	"github.com/creditd/creditd/queries"
)

// Times in the lantern and account profiles' queries.

// orderedRange refuses a range whose start (param) is after its end. A
// range has no length limit here, unlike the native API's: neither seed
// gives one, and all time is a question their clients ask.
func orderedRange(from, to time.Time, param string) error {
	if from.After(to) {
		return &queries.ParamError{Param: param, Message: "must not be after the end of the range", Value: from.Format(time.RFC3339Nano)}
	}
	return nil
}
