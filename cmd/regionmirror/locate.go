package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/human"
	"github.com/regionmirror/regionmirror/internal/model"
)

type locateCopy struct {
	Region     string     `json:"region"`
	Fill       string     `json:"fill"`  // push, on-demand
	State      string     `json:"state"` // present, missing, corrupt, deleting, not-pushed, not-copied (on demand), excluded
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
	// InFlight are the copies into on-demand regions queued, running or failed.
	InFlight []locateJob `json:"in_flight"`
}

// locateJob is a fill job of the path: the CLI shows its error in full.
type locateJob struct {
	Region     string     `json:"region"`
	State      string     `json:"state"` // queued, running, failed
	Attempts   int        `json:"attempts"`
	QueuedAt   time.Time  `json:"queued_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	Worker     string     `json:"worker,omitempty"`
	Error      string     `json:"error,omitempty"`
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
			jobs, err := d.FillJobs(ctx, 0, f.ID, 1000)
			if err != nil {
				return err
			}
			rep := locateReport{Path: f.Path, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256), DeletedAt: f.DeletedAt, InFlight: []locateJob{}}
			for _, j := range jobs {
				rep.InFlight = append(rep.InFlight, locateJob{Region: j.RegionName, State: j.State, Attempts: j.Attempts, QueuedAt: j.QueuedAt,
					StartedAt: j.StartedAt, LeaseUntil: j.LeaseUntil, Worker: j.Worker, Error: j.Error})
			}
			for _, r := range regions {
				c := locateCopy{Region: r.Name, Fill: r.Fill, State: "not-pushed", URL: r.URL(f.Path)}
				if c.Fill == "" {
					c.Fill = model.FillPush
				}
				switch {
				case !r.Carries(f.Path):
					c.State = "excluded"
				case r.FillsOnDemand(f.Path):
					c.State = "not-copied" // copied when a client there first asks for it
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
			if err := printTable(a.stdout, []string{"REGION", "STATE", "CURRENT", "VERIFIED", "URL"}, rows); err != nil {
				return err
			}
			if len(rep.InFlight) == 0 {
				return nil
			}
			fmt.Fprintln(a.stdout)
			fmt.Fprintln(a.stdout, "copies in flight:")
			rows = [][]string{}
			for _, j := range rep.InFlight {
				rows = append(rows, []string{j.Region, j.State, strconv.Itoa(j.Attempts), human.Age(now.Sub(j.QueuedAt)) + " ago", j.Worker, j.Error})
			}
			return printTable(a.stdout, []string{"REGION", "STATE", "ATTEMPTS", "QUEUED", "WORKER", "ERROR"}, rows)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
