package throttle

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want Rate
		str  string
	}{
		{"50/s", Rate{50, time.Second}, "50/s"},
		{"100/m", Rate{100, time.Minute}, "100/m"},
		{"3600/h", Rate{3600, time.Hour}, "3600/h"},
		{"5/10s", Rate{5, 10 * time.Second}, "5/10s"},
		{"1/500ms", Rate{1, 500 * time.Millisecond}, "1/500ms"},
		{" 20 / s ", Rate{20, time.Second}, "20/s"},
		{"1000000/s", Rate{1000000, time.Second}, "1000000/s"},
		{"1/24h", Rate{1, 24 * time.Hour}, "1/24h0m0s"},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		if got.String() != tt.str {
			t.Errorf("%q: String() = %q, want %q", tt.in, got.String(), tt.str)
		}
		if again, err := ParseRate(got.String()); err != nil || again != got {
			t.Errorf("%q: String does not parse back: %v, %v", tt.in, again, err)
		}
	}
}

func TestParseRateErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "want <events>/<period>"},
		{"50", "want <events>/<period>"},
		{"50 per second", "want <events>/<period>"},
		{"0/s", `"0" is not a whole number of deliveries of at least 1`},
		{"-5/s", `"-5" is not a whole number`},
		{"2.5/s", `"2.5" is not a whole number`},
		{"x/s", `"x" is not a whole number`},
		{"50/sec", `the period "sec" is not s, m, h or a positive duration`},
		{"50/", `the period "" is not`},
		{"50/0s", `the period "0s" is not`},
		{"50/-1s", `the period "-1s" is not`},
		{"2000000/s", "more than 1000000 a second"},
		{"1/25h", "a period longer than 24h0m0s"},
	}
	for _, tt := range tests {
		_, err := ParseRate(tt.in)
		if !errors.Is(err, ErrBadRate) {
			t.Errorf("ParseRate(%q) = %v, want ErrBadRate", tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "\""+tt.in+"\"") {
			t.Errorf("ParseRate(%q): error %q does not quote the input and say %q", tt.in, err, tt.want)
		}
	}
}

func TestRateJSON(t *testing.T) {
	var v struct {
		Rate Rate `json:"rate"`
	}
	if err := json.Unmarshal([]byte(`{"rate":"100/m"}`), &v); err != nil || v.Rate != (Rate{100, time.Minute}) {
		t.Fatalf("got %v, %v", v.Rate, err)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"rate":"100/m"}` {
		t.Fatalf("got %s, %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"rate":"fast"}`), &v); !errors.Is(err, ErrBadRate) {
		t.Fatalf("bad rate: %v", err)
	}
}
