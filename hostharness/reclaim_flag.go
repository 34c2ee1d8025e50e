package main

import "github.com/wasiserve/wasiserve/hostharness/engine"

// reclaimFlag is serve's --reclaim: engine.ParseReclaim's text.
type reclaimFlag struct{ engine.Reclaim }

// String is the flag's value as ParseReclaim reads it.
func (f *reclaimFlag) String() string { return f.Reclaim.String() }

// Set parses s with engine.ParseReclaim.
func (f *reclaimFlag) Set(s string) error {
	r, err := engine.ParseReclaim(s)
	if err != nil {
		return err
	}
	f.Reclaim = r
	return nil
}
