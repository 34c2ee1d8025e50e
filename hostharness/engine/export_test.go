package engine

// CLIArgs exposes the command line an installed runtime would be given.
func CLIArgs(name, wasm, listen string, cfg Config) []string {
	return cliRuntimes()[name].args(wasm, listen, cfg)
}
