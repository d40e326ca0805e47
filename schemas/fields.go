package schemas

// Field types and formats that several providers' envelopes share. The
// envelope types themselves live with their providers in package normalize.

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// ProviderTimeLayout is how Sublytics (webhook_event_date) and USAePay
// (event_triggered) write times: no zone, so the route's configured time
// zone says where they were taken.
const ProviderTimeLayout = "2006-01-02 15:04:05"

// ZeroProviderTime is what Sublytics writes for "no date" (a MySQL zero
// date). It cannot be parsed as a time, so it is treated like an empty
// string: the receive time is used instead.
const ZeroProviderTime = "0000-00-00 00:00:00"

// FlexibleID is an id a provider sends as a JSON string ("4806") or as a
// JSON integer (10001). Either way it holds the text: the digits of a
// number as written, the contents of a string.
type FlexibleID string

// errFlexibleID is returned for anything but a string or a non-negative
// integer; the message is written to follow a field name.
var errFlexibleID = errors.New("must be a string or a non-negative integer")

// UnmarshalJSON accepts a string or a non-negative integer literal. A
// fraction, an exponent or a sign is refused: such an id would have more
// than one spelling, and the id is half of the deduplication key.
func (f *FlexibleID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errFlexibleID
	}
	switch c := b[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return errFlexibleID
		}
		*f = FlexibleID(s)
		return nil
	case c >= '0' && c <= '9':
		for _, d := range b {
			if d < '0' || d > '9' {
				return errFlexibleID
			}
		}
		if len(b) > 1 && b[0] == '0' {
			return errFlexibleID
		}
		*f = FlexibleID(b)
		return nil
	}
	return errFlexibleID
}

// MarshalJSON writes the id as a JSON string, the form every consumer can
// read whatever version the provider used.
func (f FlexibleID) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, string(f)), nil
}

// ParseProviderTime reads a zone-less provider time in loc (nil means UTC).
// ok is false when the provider gave no time (empty or ZeroProviderTime).
// The result is in UTC.
func ParseProviderTime(s string, loc *time.Location) (t time.Time, ok bool, err error) {
	if s == "" || s == ZeroProviderTime {
		return time.Time{}, false, nil
	}
	if loc == nil {
		loc = time.UTC
	}
	t, err = time.ParseInLocation(ProviderTimeLayout, s, loc)
	if err != nil {
		return time.Time{}, false, err
	}
	t = t.UTC()
	if !InTimeRange(t) {
		return time.Time{}, false, errTimeRange
	}
	return t, true, nil
}

// ParseRFC3339 reads an RFC 3339 date-time with offset ("Z" counts) and
// returns it in UTC.
func ParseRFC3339(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	t = t.UTC()
	if !InTimeRange(t) {
		return time.Time{}, errTimeRange
	}
	return t, nil
}

var errTimeRange = errors.New("time out of range (years 0001 to 9999 in UTC)")

// InTimeRange reports whether t, in UTC, has a four-digit year from 0001 to
// 9999: RFC 3339 cannot write other years, so an event outside the range
// could not be encoded.
func InTimeRange(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}
