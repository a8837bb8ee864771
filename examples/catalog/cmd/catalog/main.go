// Command catalog runs one instance of Tandem's example service (package
// github.com/tandem-pg/tandem/examples/catalog). Run it with -h for its flags.
package main

import (
	"context"
	"os"

	"github.com/tandem-pg/tandem/examples/catalog"
)

func main() {
	os.Exit(catalog.Main(context.Background(), "catalog", os.Args[1:]))
}
