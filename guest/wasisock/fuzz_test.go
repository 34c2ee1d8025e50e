//go:build !wasip1

package wasisock

import (
	"strings"
	"testing"
)

// FuzzListenFDs checks that any LISTEN_FDS / LISTEN_FDNAMES pair is either
// rejected with an error or yields count consecutive fds from 3, named in
// order, without panicking.
func FuzzListenFDs(f *testing.F) {
	for _, seed := range [][2]string{
		{"1", ""}, {"2", "http:admin"}, {"0", ""}, {"-1", ""}, {"65537", ""},
		{"3", "a::c"}, {"1", ":::::"}, {" 1", ""}, {"1e3", ""}, {"２", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, count, names string) {
		env := map[string]string{"LISTEN_FDS": count, "LISTEN_FDNAMES": names}
		fds, ok, err := listenFDs(Config{Getenv: func(k string) string { return env[k] }})
		if err != nil {
			if ok || fds != nil {
				t.Fatalf("error %v together with a result %v, %v", err, fds, ok)
			}
			return
		}
		if !ok {
			if len(fds) != 0 {
				t.Fatalf("not ok but %d fds", len(fds))
			}
			return
		}
		var nameList []string
		if names != "" {
			nameList = strings.Split(names, ":")
		}
		for i, fd := range fds {
			if fd.FD != firstListenFD+i {
				t.Fatalf("fd %d at index %d, want %d", fd.FD, i, firstListenFD+i)
			}
			want := ""
			if i < len(nameList) {
				want = nameList[i]
			}
			if fd.Name != want {
				t.Fatalf("name %q at index %d, want %q", fd.Name, i, want)
			}
		}
	})
}
