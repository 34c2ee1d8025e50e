package main

import (
	"os"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// harness is this command, built for tests that need it as a process of
// its own.
var harness = enginetest.Guest{Pkg: "."}

// testEngines are the engines the command offers.
var testEngines = enginetest.Engines()

// capabilitiesOf is the named engine's capabilities.
func capabilitiesOf(name string) engine.Capabilities {
	k, _ := testEngines.Lookup(name)
	return k.Capabilities
}

// defaultEngineName is the engine serve uses when none is named.
func defaultEngineName() string {
	k, _ := testEngines.Default()
	return k.Name
}
