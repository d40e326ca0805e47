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

// TestPathSecretRedactQueryPlus: a '+' in a query is a space to a form
// decoder and a '+' to everyone else, so a secret holding one is found
// whichever way the sender wrote it.
func TestPathSecretRedactQueryPlus(t *testing.T) {
	v, err := NewPathSecret("s3cr+t", "with space")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"token=s3cr+t", "token=REDACTED"},
		{"token=s3cr%2Bt&keep=1", "token=REDACTED&keep=1"},
		{"back=%2Fhooks%2Fs3cr+t%2F", "back=REDACTED"},
		{"back=/hooks/s3cr+t", "back=REDACTED"},
		{"s3cr+t=1", "REDACTED=1"},
		{"token=with+space", "token=REDACTED"},
		{"token=with%20space", "token=REDACTED"},
		{"token=s3cr%20t", "token=s3cr%20t"},
		{"token=s3cr+tt", "token=s3cr+tt"},
	} {
		if got := v.RedactQuery(tc.in); got != tc.want {
			t.Errorf("RedactQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := v.Redact("/hooks/s3cr+t/x"); got != "/hooks/REDACTED/x" {
		t.Errorf("Redact = %q", got)
	}
}
