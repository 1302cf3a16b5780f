package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
)

func (a *app) migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database schema migrations this binary carries",
		Long: `Apply every schema migration newer than the database's schema. Running it again is a
no-op, and concurrent runs wait for each other. Every other command refuses to run until
the schema matches the binary.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDB(cmd.Context(), false)
			if err != nil {
				return err
			}
			applied, err := d.Migrate(cmd.Context())
			for _, name := range applied {
				fmt.Fprintf(a.stdout, "applied %s\n", name)
			}
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintf(a.stdout, "schema is up to date (version %d)\n", db.LatestVersion())
			}
			return nil
		}),
	}
}
