package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newLintCmd is a placeholder until the lint command lands.
func newLintCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "lint",
		Short:  "not available yet",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("lint is not available in this build yet")
		},
	}
}
