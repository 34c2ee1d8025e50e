package activation

import (
	"os"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name     string
		env      map[string]string
		checkPID bool
		want     []FD
		ok       bool
		wantErr  bool
	}{
		{name: "none", env: nil},
		{name: "zero", env: map[string]string{"LISTEN_FDS": "0"}},
		{name: "two named", env: map[string]string{"LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:admin"}, want: []FD{{3, "http"}, {4, "admin"}}, ok: true},
		{name: "fewer names", env: map[string]string{"LISTEN_FDS": "2", "LISTEN_FDNAMES": "http"}, want: []FD{{3, "http"}, {4, ""}}, ok: true},
		{name: "other pid checked", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"}, checkPID: true},
		{name: "other pid unchecked", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"}, want: []FD{{3, ""}}, ok: true},
		{name: "this pid", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": self}, checkPID: true, want: []FD{{3, ""}}, ok: true},
		{name: "garbage", env: map[string]string{"LISTEN_FDS": "x"}, wantErr: true},
		{name: "negative", env: map[string]string{"LISTEN_FDS": "-1"}, wantErr: true},
		{name: "huge", env: map[string]string{"LISTEN_FDS": "100000000"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fds, ok, err := Parse(func(k string) string { return tc.env[k] }, tc.checkPID)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if ok != tc.ok {
				t.Errorf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, fds); diff != "" {
				t.Errorf("fds (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWithout(t *testing.T) {
	got := Without([]string{"A=1", "LISTEN_FDS=1", "LISTEN_PID=2", "LISTEN_FDNAMES=x", "B=LISTEN_FDS"})
	if diff := cmp.Diff([]string{"A=1", "B=LISTEN_FDS"}, got); diff != "" {
		t.Error(diff)
	}
	if Hidden(func(string) string { return "v" })("LISTEN_FDS") != "" {
		t.Error("Hidden let LISTEN_FDS through")
	}
}
