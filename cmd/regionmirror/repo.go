package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/internal/model"
)

func (a *app) repoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "repo",
		Aliases: []string{"repository"},
		Short:   "Manage the yum/dnf repositories clients ask for by repo= and arch=",
	}
	cmd.AddCommand(a.repoAddCmd(), a.repoListCmd(), a.repoRemoveCmd())
	return cmd
}

func (a *app) repoAddCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "add NAME ARCH DIR",
		Short:   "Add a repository: DIR (relative to origin.path) holds repodata/repomd.xml",
		Example: `  regionmirror repo add fedora-40 x86_64 fedora/linux/releases/40/Everything/x86_64/os`,
		Args:    cobra.ExactArgs(3),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			r := &model.Repository{Name: args[0], Arch: args[1], Directory: args[2]}
			if err := r.Normalize(); err != nil {
				return err
			}
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			if err := d.CreateRepository(cmd.Context(), r); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added repository %s/%s (%s)\n", r.Name, r.Arch, displayDir(r.Directory))
			// The origin may live on another machine, or be filled later: warn, do not refuse.
			if root := a.cfg.Origin.Path; root != "" {
				repomd := filepath.Join(root, filepath.FromSlash(r.Directory), "repodata", "repomd.xml")
				if _, err := os.Stat(repomd); err != nil {
					fmt.Fprintf(a.stderr, "warning: %s does not exist yet; the repository is served once a push finds it\n", repomd)
				}
			}
			return nil
		}),
	}
}

func displayDir(d string) string {
	if d == "" {
		return "."
	}
	return d
}

func (a *app) repoListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List repositories",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			repos, err := d.ListRepositories(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, repos)
			}
			rows := make([][]string, 0, len(repos))
			for _, r := range repos {
				rows = append(rows, []string{r.Name, r.Arch, displayDir(r.Directory)})
			}
			return printTable(a.stdout, []string{"NAME", "ARCH", "DIRECTORY"}, rows)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) repoRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME ARCH",
		Short: "Remove a repository and its repomd.xml history (files stay in the regions)",
		Args:  cobra.ExactArgs(2),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			if err := d.DeleteRepository(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed repository %s/%s\n", args[0], args[1])
			return nil
		}),
	}
}
