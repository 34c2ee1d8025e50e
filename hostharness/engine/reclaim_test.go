package engine

import (
	"strings"
	"testing"
	"time"
)

func TestParseReclaim(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Reclaim
		wantErr string
	}{
		{"off", Reclaim{Off: true}, ""},
		{"idle=1s", Reclaim{IdleGrace: time.Second}, ""},
		{"idle=250ms, slow=5s,rate=2000", Reclaim{IdleGrace: 250 * time.Millisecond, SlowGrace: 5 * time.Second, MinRate: 2000}, ""},
		{"rate=100", Reclaim{MinRate: 100}, ""},
		{"", Reclaim{}, "want off or"},
		{"idle", Reclaim{}, "want off or"},
		{"fast=1s", Reclaim{}, `unknown setting "fast"`},
		{"idle=soon", Reclaim{}, "reclaim idle"},
		{"idle=-1s", Reclaim{}, "want a duration of 0 or more"},
		{"slow=-1s", Reclaim{}, "want a duration of 0 or more"},
		{"rate=-5", Reclaim{}, "want bytes per second"},
		{"rate=1.5", Reclaim{}, "reclaim rate"},
	} {
		got, err := ParseReclaim(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseReclaim(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.wantErr)
			}
		case err != nil || got != tc.want:
			t.Errorf("ParseReclaim(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestReclaimString: String reads back through ParseReclaim to the same
// settings, defaults set.
func TestReclaimString(t *testing.T) {
	for _, r := range []Reclaim{{}, {Off: true}, {IdleGrace: time.Second, MinRate: 10}} {
		back, err := ParseReclaim(r.String())
		if err != nil || back.String() != r.String() {
			t.Errorf("%+v: String %q reads back as %+v, %v", r, r.String(), back, err)
		}
	}
	if got, want := DefaultReclaim.String(), "idle=500ms,slow=2s,rate=500"; got != want {
		t.Errorf("DefaultReclaim is %q, want the documented %q", got, want)
	}
}
