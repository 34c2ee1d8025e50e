package engine

// CLIArgs exposes the command line an installed runtime would be given.
func CLIArgs(name, wasm string, cfg Config) []string {
	return cliRuntimes()[name].args(wasm, cfg)
}

// OwnsSockets exposes whether an engine serves sockets with hostsock.
var OwnsSockets = ownsSockets
