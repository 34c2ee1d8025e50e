package compare

import (
	"testing"
)

// FuzzLoadCorpus feeds arbitrary documents to the corpus loader: it must
// return a corpus or an error, never panic or exhaust memory, and a corpus
// it accepts must have named, prepared cases.
func FuzzLoadCorpus(f *testing.F) {
	f.Add(corpusJSON)
	for _, seed := range []string{
		`{"cases":[{"name":"a","kind":"http","method":"GET","path":"/"}]}`,
		`{"cases":[{"name":"r","kind":"raw","head":"GET / HTTP/1.1\r\nContent-Length: {{.BodyLen}}\r\n\r\n","body":{"text":"x"}}]}`,
		`{"cases":[{"name":"r","kind":"raw","head":"{{repeat \"a\" 100000000000}}"}]}`,
		`{"cases":[{"name":"r","kind":"raw","head":"{{range seq 99999999999}}x{{end}}"}]}`,
		`{"cases":[{"name":"b","kind":"http","method":"POST","path":"/","body":{"random":-1}}]}`,
		`{"known_differences":[{"target":"(","cases":"x"}],"cases":[]}`,
		`[]`, `{}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := LoadCorpus(data)
		if err != nil {
			return
		}
		if len(c.Cases) == 0 {
			t.Fatal("accepted a corpus without cases")
		}
		for _, cs := range c.Cases {
			if cs.Name == "" || (cs.Kind == KindRaw && len(cs.head) == 0) {
				t.Fatalf("accepted an unprepared case %+v", cs)
			}
		}
	})
}
