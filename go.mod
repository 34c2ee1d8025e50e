module github.com/wasiserve/wasiserve

go 1.26

require (
	github.com/bytecodealliance/wasmtime-go/v19 v19.0.0 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/stealthrocket/net v0.2.1 // indirect
	github.com/tetratelabs/wazero v1.12.0 // indirect
	golang.org/x/sys v0.44.0 // indirect
)
