package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newProveCmd is a placeholder until the prove command lands.
func newProveCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "prove",
		Short:  "not available yet",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("prove is not available in this build yet")
		},
	}
}
