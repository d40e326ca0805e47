package verify

import "testing"

func TestPathSecretRedactQuery(t *testing.T) {
	v, err := NewPathSecret("3f9c0a7e", "rotated-b2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a=1&b=2", "a=1&b=2"},
		{"token=3f9c0a7e", "token=REDACTED"},
		{"token=rotated-b2&keep=1", "token=REDACTED&keep=1"},
		{"back=%2Fhooks%2F3f9c0a7e%2F&keep=%2Fhooks", "back=REDACTED&keep=%2Fhooks"},
		{"3f9c0a7e", "REDACTED"},
		{"3f9c0a7e=x", "REDACTED=x"},
		{"t=3f9c0a7ex", "t=3f9c0a7ex"},
		{"t=%zz&u=3f9c0a7e", "t=%zz&u=REDACTED"},
		{"t=3f9c0a%37e", "t=REDACTED"},
	} {
		if got := v.RedactQuery(tc.in); got != tc.want {
			t.Errorf("RedactQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
