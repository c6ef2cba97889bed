// Command diffinv trains diffusion models, samples them and solves inverse
// problems with them. Run `diffinv --help` for the commands.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "diffinv:", err)
		os.Exit(1)
	}
}
