package activation

import (
	"os"
	"strconv"
	"strings"
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
		{name: "trailing junk", env: map[string]string{"LISTEN_FDS": "1x", "LISTEN_PID": self}, checkPID: true, wantErr: true},
		{name: "negative for this pid", env: map[string]string{"LISTEN_FDS": "-1", "LISTEN_PID": self}, checkPID: true, wantErr: true},
		{name: "count without pid", env: map[string]string{"LISTEN_FDS": "1"}, checkPID: true, want: []FD{{3, ""}}, ok: true},
		{name: "pid without count", env: map[string]string{"LISTEN_PID": self}, checkPID: true},
		{name: "pid without count unchecked", env: map[string]string{"LISTEN_PID": "1"}},
		{name: "pid not a number", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "12a"}, checkPID: true, wantErr: true},
		{name: "pid zero", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "0"}, checkPID: true, wantErr: true},
		{name: "junk for another pid", env: map[string]string{"LISTEN_FDS": "1x", "LISTEN_PID": "1"}, checkPID: true, wantErr: true},
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

func TestForThisProcess(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr string
	}{
		{name: "none"},
		{name: "this pid", env: map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": self}, want: true},
		{name: "another pid", env: map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": "1"}},
		{name: "zero", env: map[string]string{"LISTEN_FDS": "0", "LISTEN_PID": self}},
		{name: "negative", env: map[string]string{"LISTEN_FDS": "-1", "LISTEN_PID": self}, wantErr: `LISTEN_FDS="-1"`},
		{name: "trailing junk", env: map[string]string{"LISTEN_FDS": "1x", "LISTEN_PID": self}, wantErr: `LISTEN_FDS="1x"`},
		{name: "count without pid", env: map[string]string{"LISTEN_FDS": "1"}, wantErr: "LISTEN_PID is not set"},
		{name: "pid without count", env: map[string]string{"LISTEN_PID": self}, wantErr: "LISTEN_FDS is not set"},
		{name: "pid not a number", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "x"}, wantErr: `LISTEN_PID="x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ForThisProcess(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ForThisProcess = %v, %v; want %v, nil", got, err, tc.want)
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
