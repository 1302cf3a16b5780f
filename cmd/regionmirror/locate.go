package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/human"
	"github.com/regionmirror/regionmirror/internal/model"
)

type locateCopy struct {
	Region     string     `json:"region"`
	State      string     `json:"state"` // present, missing, corrupt, deleting, not-pushed, excluded
	Current    bool       `json:"current"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	URL        string     `json:"url"`
}

type locateReport struct {
	Path      string       `json:"path"`
	Size      int64        `json:"size"`
	SHA256    string       `json:"sha256"`
	DeletedAt *time.Time   `json:"deleted_at,omitempty"`
	Copies    []locateCopy `json:"regions"`
}

// originFile validates a path argument as the inventory stores it and looks the file up.
func (a *app) originFile(ctx context.Context, arg string) (*db.DB, *model.File, error) {
	p, err := model.CleanRelPath("path", arg)
	if err != nil {
		return nil, nil, err
	}
	if p == "" {
		return nil, nil, usagef("path: give a file's path relative to the origin")
	}
	d, err := a.openDB(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	f, err := d.GetFile(ctx, p)
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil, fmt.Errorf("%s is not in the origin's inventory (run 'regionmirror push' after adding it): %w", p, db.ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	return d, f, nil
}

func (a *app) locateCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "locate PATH [--json]",
		Short: "Show which regions hold a path (relative to the origin), in which state, verified when",
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, f, err := a.originFile(ctx, args[0])
			if err != nil {
				return err
			}
			regions, err := d.ListRegions(ctx)
			if err != nil {
				return err
			}
			objs, err := d.ObjectsOfFile(ctx, f.ID)
			if err != nil {
				return err
			}
			rep := locateReport{Path: f.Path, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256), DeletedAt: f.DeletedAt}
			for _, r := range regions {
				c := locateCopy{Region: r.Name, State: "not-pushed", URL: r.URL(f.Path)}
				if !r.Carries(f.Path) {
					c.State = "excluded"
				}
				for _, o := range objs {
					if o.RegionID == r.ID {
						c.State, c.VerifiedAt = o.State, o.VerifiedAt
						c.Current = o.Holds(f)
					}
				}
				rep.Copies = append(rep.Copies, c)
			}
			if asJSON {
				return printJSON(a.stdout, rep)
			}
			fmt.Fprintf(a.stdout, "%s  %s  sha256 %s\n", rep.Path, human.Bytes(rep.Size), rep.SHA256)
			if f.DeletedAt != nil {
				fmt.Fprintf(a.stdout, "deleted at the origin %s ago\n", human.Age(time.Since(*f.DeletedAt)))
			}
			now := time.Now()
			rows := [][]string{}
			for _, c := range rep.Copies {
				verified := ""
				if c.VerifiedAt != nil {
					verified = human.Age(now.Sub(*c.VerifiedAt)) + " ago"
				}
				rows = append(rows, []string{c.Region, c.State, yesNo(c.Current), verified, c.URL})
			}
			return printTable(a.stdout, []string{"REGION", "STATE", "CURRENT", "VERIFIED", "URL"}, rows)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) purgeCmd() *cobra.Command {
	var region string
	cmd := &cobra.Command{
		Use:   "purge PATH [--region R]",
		Short: "Forget a region's copy of a path so the next push writes it again",
		Long: `Forget what is recorded about a path's copy in one region (or all): the server stops
sending clients there for it, and the next push writes it again. The object itself is
left in place until then.`,
		Args: cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, f, err := a.originFile(ctx, args[0])
			if err != nil {
				return err
			}
			p := f.Path
			var regionID int64
			if region != "" {
				r, err := d.GetRegion(ctx, region)
				if err != nil {
					return err
				}
				regionID = r.ID
			}
			n, err := d.ForgetObject(ctx, p, regionID)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "forgot %d copies of %s; the next push writes them again\n", n, p)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&region, "region", "r", "", "only this region (default: every region)")
	return cmd
}
