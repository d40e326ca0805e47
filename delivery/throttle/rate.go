package throttle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadRate is wrapped by every error ParseRate returns.
var ErrBadRate = errors.New("throttle: bad rate")

// MaxPerSecond bounds a rate: a destination asking for more than a million
// deliveries a second is a typo, and the bound keeps the interval between
// two deliveries at least a microsecond.
const MaxPerSecond = 1_000_000

// MaxPeriod bounds a rate's period: a limit is meant to pace a backlog,
// not to ration a day's deliveries.
const MaxPeriod = 24 * time.Hour

// Rate is a number of deliveries per period.
type Rate struct {
	// Events is how many deliveries may start in each Per; at least 1.
	Events int
	// Per is the period; positive.
	Per time.Duration
}

// ParseRate reads "<events>/<period>": the period is s, m or h (one
// second, minute or hour) or a Go duration ("10s", "500ms"). So "50/s" is
// fifty deliveries a second, "100/m" a hundred a minute, "5/10s" five every
// ten seconds. Spaces around the slash are allowed.
func ParseRate(s string) (Rate, error) {
	num, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%w %q: want <events>/<period>, such as 50/s, 100/m or 5/10s", ErrBadRate, s)
	}
	num, per = strings.TrimSpace(num), strings.TrimSpace(per)
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		return Rate{}, fmt.Errorf("%w %q: %q is not a whole number of deliveries of at least 1", ErrBadRate, s, num)
	}
	var d time.Duration
	switch per {
	case "s":
		d = time.Second
	case "m":
		d = time.Minute
	case "h":
		d = time.Hour
	default:
		if d, err = time.ParseDuration(per); err != nil || d <= 0 {
			return Rate{}, fmt.Errorf("%w %q: the period %q is not s, m, h or a positive duration such as 10s", ErrBadRate, s, per)
		}
	}
	r := Rate{Events: n, Per: d}
	if err := r.Validate(); err != nil {
		return Rate{}, fmt.Errorf("%w %q: %v", ErrBadRate, s, err)
	}
	return r, nil
}

// Validate reports a rate that ParseRate would refuse.
func (r Rate) Validate() error {
	switch {
	case r.Events < 1 || r.Per <= 0:
		return errors.New("events and period must be positive")
	case r.interval() < time.Second/MaxPerSecond:
		return fmt.Errorf("more than %d a second", MaxPerSecond)
	case r.Per > MaxPeriod:
		return fmt.Errorf("a period longer than %s", MaxPeriod)
	}
	return nil
}

// interval is the time between two deliveries at the rate.
func (r Rate) interval() time.Duration { return r.Per / time.Duration(r.Events) }

// PerSecond is the rate in deliveries a second, for display and metrics.
func (r Rate) PerSecond() float64 { return float64(r.Events) / r.Per.Seconds() }

// String writes r as ParseRate reads it: "50/s", "100/m", "5/10s".
func (r Rate) String() string {
	switch r.Per {
	case time.Second:
		return fmt.Sprintf("%d/s", r.Events)
	case time.Minute:
		return fmt.Sprintf("%d/m", r.Events)
	case time.Hour:
		return fmt.Sprintf("%d/h", r.Events)
	}
	return fmt.Sprintf("%d/%s", r.Events, r.Per)
}

// MarshalText writes String, so a Rate is a string in JSON.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses with ParseRate.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
