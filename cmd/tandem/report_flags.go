package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/report"
)

// reportFlags are the output flags of the commands that print findings (lint, check).
type reportFlags struct {
	format  string
	jsonOut bool
}

func (r *reportFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.format, "format", "text", "output format: "+strings.Join(report.Formats, ", "))
	cmd.Flags().BoolVar(&r.jsonOut, "json", false, "same as --format json")
}

// resolve returns the chosen format, or a usage error when the flags contradict each
// other or name no format.
func (r *reportFlags) resolve(cmd *cobra.Command) (string, error) {
	format := r.format
	if r.jsonOut {
		if cmd.Flags().Changed("format") && format != "json" {
			return "", usageErr(fmt.Errorf("--json and --format %s contradict each other; give one", format))
		}
		format = "json"
	}
	if !slices.Contains(report.Formats, format) {
		return "", usageErr(fmt.Errorf("--format: %q is not one of %s", format, strings.Join(report.Formats, ", ")))
	}
	return format, nil
}
