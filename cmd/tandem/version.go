package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/buildinfo"
	"github.com/tandem-pg/tandem/internal/cli"
)

// setVersion gives root the --version flag: the version and the commit of the build.
func setVersion(root *cobra.Command) {
	root.Version = buildinfo.Read().String()
	root.SetVersionTemplate("tandem {{.Version}}\n")
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print Tandem's version and the commit it was built from",
		Long: `Version prints the module version of this build of Tandem and the commit it was built
from (Go's build information), with "+dirty" when the work tree had uncommitted changes.
The state schema records the version that ran each step of a migration; status shows it.`,
		Args: cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Read()
			if asJSON {
				return printJSON(cmd.OutOrStdout(), info)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tandem %s\n", info)
			if info.CommitTime != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "committed %s, built with %s\n", info.CommitTime, info.GoVersion)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "built with %s\n", info.GoVersion)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
