// Command dialprobe dials and looks up what its arguments say and prints
// one line per call: "dial ADDR: ERR" or "lookup NAME: ERR", and whether
// the error is wasinet.ErrNoSocketExtensions. The end-to-end tests run it
// on a runtime without the socket extensions.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/wasiserve/wasiserve/guest/wasinet"
)

func main() {
	for _, arg := range os.Args[1:] {
		op, target, _ := strings.Cut(arg, "=")
		var err error
		switch op {
		case "dial":
			var c interface{ Close() error }
			if c, err = wasinet.Dial("tcp", target); err == nil {
				c.Close()
			}
		case "lookup":
			_, err = wasinet.LookupHost(context.Background(), target)
		default:
			fmt.Fprintf(os.Stderr, "dialprobe: %q: want dial=ADDR or lookup=NAME\n", arg)
			os.Exit(2)
		}
		fmt.Printf("%s %s: %v (no socket extensions: %v)\n", op, target, err, errors.Is(err, wasinet.ErrNoSocketExtensions))
	}
}
