package main

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/server/selection"
)

func (a *app) explainCmd() *cobra.Command {
	var repo, arch, path, location, ip, country string
	cmd := &cobra.Command{
		Use:   "explain (--repo R --arch A | --path P) [--location L] [--ip IP] [--country CC]",
		Short: "Show which regions a client would be sent to, and why every other region is left out",
		Long: `Make the decision the server makes for a metalink (--repo and --arch) or a file (--path),
for a client described by --location, --country and --ip (GeoIP uses server.geoip_database),
from a fresh snapshot of the database, and print it with a reason for every region.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if (path == "") == (repo == "" && arch == "") || (path == "" && (repo == "" || arch == "")) {
				return usagef("give either --repo and --arch, or --path")
			}
			req := selection.Request{Location: location, Now: time.Now(), Explain: true}
			if ip != "" {
				addr, err := netip.ParseAddr(strings.Trim(ip, "[]"))
				if err != nil {
					return usagef("--ip %q is not an IP address", ip)
				}
				req.Client = addr.Unmap().WithZone("")
			}
			for c := range strings.SplitSeq(country, ",") {
				if c = strings.TrimSpace(c); c == "" {
					continue
				}
				if strings.EqualFold(c, "global") {
					req.Global = true
					continue
				}
				cc, ok := geo.NormalizeCountry(c)
				if !ok {
					return usagef("--country %q is not an ISO 3166-1 alpha-2 code", c)
				}
				req.Countries = append(req.Countries, cc)
			}
			ctx := cmd.Context()
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			d, err := a.openDB(ctx, true)
			if err != nil {
				return err
			}
			data, err := d.LoadSnapshot(ctx)
			if err != nil {
				return err
			}
			var files *selection.FileIndex
			if path != "" {
				t, err := d.LoadFileTable(ctx)
				if err != nil {
					return err
				}
				files = selection.NewFileIndex(t)
			}
			snap := selection.BuildSnapshot(data, files, servePolicy(cfg), nil) // the policy serve gets from the same config
			geoNote := "no GeoIP database (server.geoip_database)"
			if req.Client.IsValid() && cfg.Server.GeoIPDatabase != "" {
				g, err := geo.OpenGeoIP(cfg.Server.GeoIPDatabase, nil)
				if err != nil {
					return err
				}
				if loc, ok := g.Lookup(req.Client); ok {
					req.ClientGeo = loc
					geoNote = fmt.Sprintf("GeoIP: country %s, continent %s", cmp.Or(loc.Country, "?"), cmp.Or(loc.Continent, "?"))
					if loc.HasCoords {
						geoNote += fmt.Sprintf(", at %.2f,%.2f", loc.Lat, loc.Lon)
					}
				} else {
					geoNote = "GeoIP does not know it"
				}
			}

			var (
				dec    *selection.Decision
				target string
				urlOf  func(r *selection.Region) string
			)
			w := a.stdout
			if path != "" {
				path = strings.Trim(path, "/")
				dec = selection.SelectFile(snap, path, req)
				target = "file " + path
				urlOf = func(r *selection.Region) string { return r.URL(path) }
			} else {
				rp := snap.Repository(repo, arch)
				if rp == nil {
					var known []string
					for _, r := range snap.Repos {
						known = append(known, r.Name+"/"+r.Arch)
					}
					return usagef("unknown repository %s/%s (known: %s)", repo, arch, strings.Join(known, ", "))
				}
				dec = selection.SelectRepository(snap, rp, req)
				target = fmt.Sprintf("repository %s/%s (%s)", rp.Name, rp.Arch, rp.Directory)
				if len(rp.Versions) > 0 {
					cur := rp.Versions[0]
					target += fmt.Sprintf("\ncurrent repomd.xml: sha256 %s, timestamp %d, first seen %s",
						cur.SHA256Hex, cur.Timestamp, cur.FirstSeen.UTC().Format(time.RFC3339))
					for _, alt := range rp.Alternates(req.Now, snap.Policy.AlternatesMaxAge) {
						target += fmt.Sprintf("\nalternate:          sha256 %s, superseded %s ago", alt.SHA256Hex, time.Since(alt.SupersededAt).Round(time.Second))
					}
				}
				urlOf = func(r *selection.Region) string { return r.ListedRepomdURL(rp) } // as metalinks list it
			}
			client := []string{}
			if location != "" {
				client = append(client, "location="+location)
			}
			if country != "" {
				client = append(client, "country="+country)
			}
			if req.Client.IsValid() {
				client = append(client, "ip="+req.Client.String()+" ("+geoNote+")")
			}
			if len(client) == 0 {
				client = append(client, "nothing known")
			}
			fmt.Fprintf(w, "%s\nclient: %s\ntier: %s: %s\n", target, strings.Join(client, ", "), dec.Tier, dec.Basis)
			return writeDecision(w, dec, urlOf)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&repo, "repo", "", "repository name, as in repo=")
	f.StringVar(&arch, "arch", "", "architecture, as in arch=")
	f.StringVar(&path, "path", "", "a file's path under the origin (instead of --repo/--arch)")
	f.StringVar(&location, "location", "", "what the client sends as location=")
	f.StringVar(&ip, "ip", "", "the client's address (netblocks, GeoIP)")
	f.StringVar(&country, "country", "", "what the client sends as country= (comma-separated codes, or global)")
	return cmd
}

func writeDecision(w io.Writer, d *selection.Decision, urlOf func(*selection.Region) string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nchosen, in order:")
	if len(d.Chosen) == 0 {
		fmt.Fprintln(tw, "  (none)")
	}
	for i, c := range d.Chosen {
		why := c.Why
		if c.Version > 0 {
			why += " (serves an alternate repomd.xml)"
		}
		fmt.Fprintf(tw, "  %d.\t%s\t%s\t%s\n", i+1, c.Region.Name, why, urlOf(c.Region))
	}
	if d.Origin != nil {
		fmt.Fprintf(tw, "  last\torigin\tthe origin, the last resort\t%s\n", urlOf(d.Origin))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Excluded) > 0 {
		fmt.Fprintln(tw, "\nleft out:")
		for _, e := range d.Excluded {
			fmt.Fprintf(tw, "  %s\t%s\n", e.Region.Name, e.Reason)
		}
	}
	for i, n := range d.Notes {
		if i == 0 {
			fmt.Fprintln(tw, "\nnotes:")
		}
		fmt.Fprintf(tw, "  %s\n", n)
	}
	return tw.Flush()
}
