package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newMaintenanceCmd is a placeholder until the maintenance command lands.
func newMaintenanceCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "maintenance",
		Short:  "not available yet",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("maintenance is not available in this build yet")
		},
	}
}
