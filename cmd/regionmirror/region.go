package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
)

func (a *app) regionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "region",
		Short: "Manage regions: the buckets or directories that hold a copy of the tree",
	}
	cmd.AddCommand(a.regionAddCmd(), a.regionListCmd(), a.regionShowCmd(), a.regionEditCmd(),
		a.regionSetEnabledCmd(true), a.regionSetEnabledCmd(false), a.regionRemoveCmd())
	cmd.AddCommand(a.regionImportAWSRangesCmd())
	return cmd
}

// regionFlags are the settable fields of a region, shared by add and edit.
type regionFlags struct {
	bucket, dir, publicURL, endpoint, s3Region, prefix string
	country, continent, credentials, fill, maxBytes    string
	lat, lon                                           float64
	aliases, netblocks, includes, pins                 []string
	weight, concurrency                                int
	locationOnly                                       bool
	// edit only
	clearAliases, clearNetblocks, clearIncludes, clearCoordinates, clearPins bool
}

func (f *regionFlags) register(fs *pflag.FlagSet, edit bool) {
	fs.StringVar(&f.bucket, "bucket", "", "S3 bucket that holds the region's copy")
	fs.StringVar(&f.dir, "dir", "", "local directory that holds the region's copy (a file region, instead of --bucket)")
	fs.StringVar(&f.publicURL, "public-url", "", "base URL clients download from (the bucket's or directory's public URL)")
	fs.StringVar(&f.endpoint, "endpoint", "", "S3 endpoint URL of an S3-compatible service (path-style addressing)")
	fs.StringVar(&f.s3Region, "s3-region", "", "S3 signing region (default: the region name on AWS, us-east-1 with --endpoint)")
	fs.StringVar(&f.prefix, "prefix", "", "key prefix inside the bucket or directory")
	fs.StringVar(&f.country, "country", "", "ISO 3166-1 alpha-2 country code (US, DE)")
	fs.StringVar(&f.continent, "continent", "", "continent code (AF AN AS EU NA OC SA; default: the country's)")
	fs.Float64Var(&f.lat, "lat", 0, "latitude in degrees (-90..90), with --lon")
	fs.Float64Var(&f.lon, "lon", 0, "longitude in degrees (-180..180), with --lat")
	fs.StringArrayVar(&f.aliases, "alias", nil, "another name clients may use in location= (repeatable, or comma-separated)")
	fs.StringArrayVar(&f.netblocks, "netblock", nil, "client CIDR sent to this region first (repeatable, or comma-separated)")
	fs.StringArrayVar(&f.includes, "include", nil, "carry only this part of the tree (path prefix; repeatable)")
	fs.IntVar(&f.weight, "weight", model.DefaultWeight, "preference among equally near regions (0..10000)")
	fs.IntVar(&f.concurrency, "concurrency", 0, "transfers in flight when pushing (0: push.concurrency)")
	fs.BoolVar(&f.locationOnly, "location-only", false, "only clients that name this region or sit in its netblocks may use it")
	fs.StringVar(&f.credentials, "credentials", "", "AWS shared-config profile for this bucket (never the secret itself)")
	fs.StringVar(&f.fill, "fill", model.FillPush, "push (everything pushed in advance) or on-demand (metadata and --pin prefixes pushed; other files copied when first asked for)")
	fs.StringArrayVar(&f.pins, "pin", nil, "on-demand regions: push this prefix in advance and never expire it (repeatable)")
	fs.StringVar(&f.maxBytes, "max-bytes", "", "on-demand regions: cap on what on-demand copies hold (e.g. 500GiB; 0 for none); the least recently requested go first")
	if edit {
		fs.BoolVar(&f.clearPins, "clear-pins", false, "remove every pin")
		fs.BoolVar(&f.clearAliases, "clear-aliases", false, "remove every alias")
		fs.BoolVar(&f.clearNetblocks, "clear-netblocks", false, "remove every netblock")
		fs.BoolVar(&f.clearIncludes, "clear-includes", false, "carry the whole tree again")
		fs.BoolVar(&f.clearCoordinates, "clear-coordinates", false, "forget latitude and longitude")
	}
}

// splitList accepts repeated flags and comma-separated values alike.
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

func parseNetblocks(values []string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, s := range splitList(values) {
		p, err := model.ParseNetblock(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// apply copies the flags that were given onto r (all of them for add).
func (f *regionFlags) apply(fs *pflag.FlagSet, r *model.Region) error {
	set := func(name string) bool { return fs.Changed(name) }
	if set("bucket") {
		r.Bucket = f.bucket
	}
	if set("dir") {
		r.Dir = f.dir
	}
	if set("public-url") {
		r.PublicURL = f.publicURL
	}
	if set("endpoint") {
		r.Endpoint = f.endpoint
	}
	if set("s3-region") {
		r.S3Region = f.s3Region
	}
	if set("prefix") {
		r.Prefix = f.prefix
	}
	if set("country") {
		r.Country = f.country
		if !set("continent") {
			r.Continent = "" // derived again from the new country
		}
	}
	if set("continent") {
		r.Continent = f.continent
	}
	if f.clearCoordinates {
		r.Latitude, r.Longitude = nil, nil
	}
	if set("lat") {
		lat := f.lat
		r.Latitude = &lat
	}
	if set("lon") {
		lon := f.lon
		r.Longitude = &lon
	}
	if f.clearAliases {
		r.Aliases = []string{}
	}
	if set("alias") {
		r.Aliases = splitList(f.aliases)
	}
	if f.clearNetblocks {
		r.Netblocks = []netip.Prefix{}
	}
	if set("netblock") {
		blocks, err := parseNetblocks(f.netblocks)
		if err != nil {
			return err
		}
		r.Netblocks = blocks
	}
	if f.clearIncludes {
		r.Includes = []string{}
	}
	if set("include") {
		r.Includes = splitList(f.includes)
	}
	if set("weight") {
		r.Weight = f.weight
	}
	if set("concurrency") {
		r.Concurrency = f.concurrency
	}
	if set("location-only") {
		r.Access = model.AccessPublic
		if f.locationOnly {
			r.Access = model.AccessLocationOnly
		}
	}
	if set("credentials") {
		r.Credentials = f.credentials
	}
	if set("fill") {
		r.Fill = f.fill
	}
	if f.clearPins {
		r.Pins = []string{}
	}
	if set("pin") {
		r.Pins = splitList(f.pins)
	}
	if set("max-bytes") {
		n, err := config.ParseSize(f.maxBytes)
		if err != nil {
			return &model.ValidationError{Field: "max-bytes", Value: f.maxBytes, Reason: err.Error()}
		}
		r.MaxBytes = int64(n)
	}
	return nil
}

func (a *app) regionAddCmd() *cobra.Command {
	var f regionFlags
	cmd := &cobra.Command{
		Use:   "add NAME (--bucket BUCKET | --dir PATH) --public-url URL [flags]",
		Short: "Add a region",
		Example: `  regionmirror region add us-east-1 --bucket mirror-us-east-1 --country US --lat 38.9 --lon -77.4 \
      --public-url https://mirror-us-east-1.s3.us-east-1.amazonaws.com --alias use1
  regionmirror region add lab --dir /srv/mirror/lab --public-url http://mirror.lab.example/ --country DE`,
		Args: cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			if fs.Changed("bucket") == fs.Changed("dir") {
				return usagef("region add: give exactly one of --bucket (an S3 region) or --dir (a file region)")
			}
			r := &model.Region{Name: args[0], Kind: model.KindS3, Weight: model.DefaultWeight, Enabled: true,
				Aliases: []string{}, Netblocks: []netip.Prefix{}, Includes: []string{}, Pins: []string{}, Fill: model.FillPush}
			if fs.Changed("dir") {
				r.Kind = model.KindFile
			}
			if err := f.apply(fs, r); err != nil {
				return err
			}
			// Validate before touching the database: bad input writes nothing.
			if err := r.Normalize(); err != nil {
				return err
			}
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			if err := d.CreateRegion(cmd.Context(), r); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added region %s\n", r.Name)
			return nil
		}),
	}
	f.register(cmd.Flags(), false)
	return cmd
}

func (a *app) regionEditCmd() *cobra.Command {
	var f regionFlags
	cmd := &cobra.Command{
		Use:   "edit NAME [flags]",
		Short: "Change a region's settings (only the flags given)",
		Long: `Change a region's settings. Only the flags given change; list flags (--alias,
--netblock, --include) replace the whole list, and --clear-* empty it.`,
		Example: `  regionmirror region edit us-east-1 --weight 200 --netblock 3.5.0.0/16 --netblock 3.6.0.0/16
  regionmirror region edit us-east-1 --location-only=false --clear-includes`,
		Args: cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			if fs.NFlag() == 0 || (fs.NFlag() == 1 && fs.Changed("config")) {
				return usagef("region edit: nothing to change; give at least one flag")
			}
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			r, move, err := d.UpdateRegion(cmd.Context(), args[0], func(r *model.Region) error {
				if err := f.apply(fs, r); err != nil {
					return err
				}
				return r.Normalize()
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "updated region %s\n", r.Name)
			if move.Moved {
				// Nothing verified at the old place says anything about the new one.
				fmt.Fprintf(a.stdout, "region %s moved: forgot %d verified copies and %d repository states; clients are not sent there until a push or scan verifies it (run: regionmirror push --region %s)\n",
					r.Name, move.Copies, move.Repositories, r.Name)
			}
			return nil
		}),
	}
	f.register(cmd.Flags(), true)
	return cmd
}

func (a *app) regionSetEnabledCmd(enable bool) *cobra.Command {
	verb, short := "enable", "Let the server send clients to a region again"
	if !enable {
		verb, short = "disable", "Stop sending clients to a region (pushes and scans go on)"
	}
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			if _, _, err := d.UpdateRegion(cmd.Context(), args[0], func(r *model.Region) error {
				r.Enabled = enable
				return nil
			}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "region %s %sd\n", args[0], verb)
			return nil
		}),
	}
}

func (a *app) regionRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a region and what is recorded about its copy (the bucket is not touched)",
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			if err := d.DeleteRegion(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed region %s\n", args[0])
			return nil
		}),
	}
}

func (a *app) regionListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List regions",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			regions, err := d.ListRegions(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, regions)
			}
			rows := make([][]string, 0, len(regions))
			for _, r := range regions {
				rows = append(rows, []string{r.Name, r.Kind, storageOf(&r), r.Country, r.Continent,
					strconv.Itoa(r.Weight), r.Access, r.Fill, yesNo(r.Enabled), r.PublicURL})
			}
			return printTable(a.stdout, []string{"NAME", "KIND", "STORAGE", "COUNTRY", "CONT", "WEIGHT", "ACCESS", "FILL", "ENABLED", "PUBLIC URL"}, rows)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) regionShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one region's settings",
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			r, err := d.GetRegion(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, r)
			}
			coords := ""
			if r.Latitude != nil {
				coords = fmt.Sprintf("%g, %g", *r.Latitude, *r.Longitude)
			}
			blocks := make([]string, len(r.Netblocks))
			for i, b := range r.Netblocks {
				blocks[i] = b.String()
			}
			concurrency := "default"
			if r.Concurrency > 0 {
				concurrency = strconv.Itoa(r.Concurrency)
			}
			rows := [][]string{
				{"name", r.Name}, {"kind", r.Kind}, {"storage", storageOf(r)}, {"endpoint", r.Endpoint},
				{"s3 region", r.S3Region}, {"prefix", r.Prefix}, {"public url", r.PublicURL},
				{"country", r.Country}, {"continent", r.Continent}, {"coordinates", coords},
				{"aliases", strings.Join(r.Aliases, ", ")}, {"netblocks", strings.Join(blocks, ", ")},
				{"includes", strings.Join(r.Includes, ", ")}, {"weight", strconv.Itoa(r.Weight)},
				{"access", r.Access}, {"credentials", r.Credentials}, {"concurrency", concurrency},
				{"fill", r.Fill}, {"pins", strings.Join(r.Pins, ", ")}, {"max bytes", maxBytesOf(r)},
				{"enabled", yesNo(r.Enabled)}, {"created", r.CreatedAt.UTC().Format("2006-01-02 15:04:05Z")},
				{"updated", r.UpdatedAt.UTC().Format("2006-01-02 15:04:05Z")},
			}
			return printTable(a.stdout, nil, rows)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func maxBytesOf(r *model.Region) string {
	if r.MaxBytes == 0 {
		return "no cap"
	}
	return config.Size(r.MaxBytes).String()
}

func storageOf(r *model.Region) string {
	if r.Kind == model.KindFile {
		return r.Dir
	}
	return "s3://" + r.Bucket
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
