package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/repomd"
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
	var kind, suite, keyring string
	cmd := &cobra.Command{
		Use:   "add NAME ARCH DIR | add NAME --kind apt --suite SUITE DIR",
		Short: "Add a repository: DIR (relative to origin.path) holds repodata/repomd.xml, or for APT dists/SUITE/",
		Example: `  regionmirror repo add fedora-40 x86_64 fedora/linux/releases/40/Everything/x86_64/os
  regionmirror repo add debian-bookworm --kind apt --suite bookworm --keyring /usr/share/keyrings/debian-archive-keyring.gpg debian`,
		Args: func(cmd *cobra.Command, args []string) error {
			if kind == model.RepoApt {
				return cobra.ExactArgs(2)(cmd, args)
			}
			return cobra.ExactArgs(3)(cmd, args)
		},
		RunE: action(func(cmd *cobra.Command, args []string) error {
			r := &model.Repository{Name: args[0], Kind: kind, Suite: suite, Keyring: keyring}
			if kind == model.RepoApt {
				r.Directory = args[1]
			} else {
				r.Arch, r.Directory = args[1], args[2]
			}
			if err := r.Normalize(); err != nil {
				return err
			}
			if r.Keyring != "" {
				// Read now, so that a wrong path or a file that is no keyring is bad
				// input here rather than a failing push later.
				raw, err := os.ReadFile(r.Keyring)
				if err != nil {
					return &model.ValidationError{Field: "keyring", Value: r.Keyring, Reason: err.Error()}
				}
				if _, err := repomd.ReadKeyring(raw); err != nil {
					return &model.ValidationError{Field: "keyring", Value: r.Keyring, Reason: err.Error()}
				}
			}
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			if r.IsApt() {
				r.ReleaseFile = releaseFileOf(a.cfg.Origin.Path, r) // the configuration is read by openDB
			}
			if err := d.CreateRepository(cmd.Context(), r); err != nil {
				return err
			}
			if r.IsApt() {
				fmt.Fprintf(a.stdout, "added APT repository %s (suite %s in %s)\n", r.Name, r.Suite, displayDir(r.Directory))
			} else {
				fmt.Fprintf(a.stdout, "added repository %s/%s (%s)\n", r.Name, r.Arch, displayDir(r.Directory))
			}
			// The origin may live on another machine, or be filled later: warn, do not refuse.
			if root := a.cfg.Origin.Path; root != "" {
				meta := filepath.Join(root, filepath.FromSlash(r.MetadataPath()))
				if _, err := os.Stat(meta); err != nil {
					fmt.Fprintf(a.stderr, "warning: %s does not exist yet; the repository is served once a push finds it\n", meta)
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&kind, "kind", model.RepoYum, "yum (DIR holds repodata/) or apt (DIR is an archive root holding dists/SUITE/)")
	cmd.Flags().StringVar(&suite, "suite", "", "APT: the suite (codename) directory under dists/")
	cmd.Flags().StringVar(&keyring, "keyring", "", "APT: an OpenPGP keyring (armored or binary) that must verify every InRelease or Release.gpg")
	return cmd
}

// releaseFileOf is the file that identifies an APT suite's revisions: InRelease, unless
// the local origin has only a Release (a suite published unsigned, or with Release.gpg).
func releaseFileOf(root string, r *model.Repository) string {
	if root == "" {
		return "InRelease"
	}
	suite := filepath.Join(root, filepath.FromSlash(r.Directory), "dists", r.Suite)
	if _, err := os.Stat(filepath.Join(suite, "InRelease")); err != nil {
		if _, err := os.Stat(filepath.Join(suite, "Release")); err == nil {
			return "Release"
		}
	}
	return "InRelease"
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
				suite := r.Suite
				if suite == "" {
					suite = "-"
				}
				rows = append(rows, []string{r.Name, r.Arch, r.Kind, suite, displayDir(r.Directory)})
			}
			return printTable(a.stdout, []string{"NAME", "ARCH", "KIND", "SUITE", "DIRECTORY"}, rows)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) repoRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME [ARCH]",
		Short: "Remove a repository and its metadata history (files stay in the regions); ARCH defaults to all (APT)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			arch := model.AptArch
			if len(args) == 2 {
				arch = args[1]
			}
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			if err := d.DeleteRepository(cmd.Context(), args[0], arch); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed repository %s/%s\n", args[0], arch)
			return nil
		}),
	}
}
